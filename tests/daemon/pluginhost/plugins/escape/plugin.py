"""A plugin written to misbehave: each command tries one way out of its sandbox."""

from __future__ import annotations

import os
import signal
import socket

from plugins.sdk import Context, Plugin

plugin = Plugin()


@plugin.command("ping")
def ping(ctx: Context) -> str:
    return "pong"


@plugin.command("connect")
def connect(ctx: Context, host: str, port: str) -> str:
    socket.create_connection((host, int(port)), timeout=5).close()
    return "connected"


@plugin.command("fetch")
def fetch(ctx: Context, url: str) -> int:
    return ctx.fetch(url).status


@plugin.command("read")
def read(ctx: Context, path: str) -> str:
    with open(path, "rb") as fh:
        return fh.read(64).hex()


@plugin.command("write")
def write(ctx: Context, path: str) -> str:
    with open(path, "w") as fh:
        fh.write("escaped")
    return "written"


@plugin.command("write-data")
def write_data(ctx: Context) -> str:
    (ctx.data_dir / "inside.txt").write_text("fine")
    return str(ctx.data_dir / "inside.txt")


@plugin.command("hog")
def hog(ctx: Context) -> int:
    chunks = []
    while True:
        chunks.append(bytearray(16 << 20))


@plugin.command("forkbomb")
def forkbomb(ctx: Context) -> None:
    while True:
        os.fork()


@plugin.command("loop")
def loop(ctx: Context) -> None:
    while True:
        pass


@plugin.command("unix")
def unix(ctx: Context, path: str) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(path)
        sock.sendall(b'{"jsonrpc":"2.0","id":1,"method":"status","params":{}}\n')
        return sock.recv(200).decode(errors="replace")


@plugin.command("crash")
def crash(ctx: Context) -> None:
    os.kill(os.getpid(), signal.SIGSEGV)
