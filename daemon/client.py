"""A small synchronous client for the CLI, the tests and the benchmarks."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from daemon import PROTOCOL_VERSION
from daemon.config import Config
from daemon.errors import DaemonUnavailable, from_rpc
from daemon.paths import Paths

Notify = Callable[[str, dict[str, Any]], None]

EXIT_ALREADY_RUNNING = 75  # `hearth daemon` found the lock taken (EX_TEMPFAIL)


class Client:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader = sock.makefile("rb")
        self._ids = itertools.count(1)
        self.server: dict[str, Any] = {}
        self._responses: dict[Any, dict[str, Any]] = {}  # replies read while awaiting another

    @classmethod
    def connect(cls, path: os.PathLike[str] | str, name: str = "hearth-cli") -> Client:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(os.fspath(path))
        except OSError as exc:
            sock.close()
            raise DaemonUnavailable(f"no Hearth daemon answers on {path} ({exc.strerror})") from exc
        client = cls(sock)
        client.server = client.call("hello", {"client": name, "protocol": PROTOCOL_VERSION})
        return client

    def send(self, method: str, params: dict[str, Any] | None = None) -> int:
        rid = next(self._ids)
        self._write({"jsonrpc": "2.0", "id": rid, "method": method, "params": params or {}})
        return rid

    def cancel(self, rid: int) -> None:
        """Ask the daemon to stop request ``rid`` (a notification: no reply to wait for)."""
        self._write({"jsonrpc": "2.0", "method": "cancel", "params": {"id": rid}})

    def _write(self, msg: dict[str, Any]) -> None:
        try:
            self.sock.sendall(json.dumps(msg).encode() + b"\n")
        except OSError as exc:
            if isinstance(exc, BrokenPipeError | ConnectionResetError):
                self._said_before_closing()
            raise DaemonUnavailable(f"lost the connection to the daemon ({exc.strerror})") from exc

    def _said_before_closing(self) -> None:
        """Raise the error about the whole connection a daemon that hung up sent first
        (a line over the size limit), if it sent one."""
        with contextlib.suppress(DaemonUnavailable):
            while self._read() is not None:
                pass

    def _read(self) -> dict[str, Any] | None:
        """The next message, or None at the end. An error with no id concerns the whole
        connection (a line over the size limit): it is raised here, whoever waits."""
        try:
            line = self.reader.readline()
        except OSError as exc:
            raise DaemonUnavailable(f"lost the connection to the daemon ({exc.strerror})") from exc
        if not line.endswith(b"\n"):  # the end, perhaps mid-reply (the daemon dropped us)
            return None
        try:
            msg: dict[str, Any] = json.loads(line)
        except ValueError:
            raise DaemonUnavailable(
                f"the daemon sent a malformed reply ({len(line)} bytes); closing"
            ) from None
        if "error" in msg and msg.get("id") is None:
            raise from_rpc(msg["error"])
        return msg

    def wait(self, rid: int, on_notify: Notify | None = None) -> Any:
        """Read until the response to ``rid``; hand its notifications to ``on_notify``.

        Replies to other requests are kept for their own wait(); their notifications
        are dropped (stream one request at a time per connection to see them all).
        """
        msg = self._responses.pop(rid, None)
        while msg is None:
            msg = self._read()
            if msg is None:
                raise DaemonUnavailable("the daemon closed the connection")
            if "method" in msg:
                if on_notify and msg.get("params", {}).get("id") == rid:
                    on_notify(msg["method"], msg["params"])
                msg = None
            elif msg.get("id") != rid:
                self._responses[msg.get("id")] = msg
                msg = None
        if "error" in msg:
            raise from_rpc(msg["error"])
        return msg["result"]

    def call(
        self, method: str, params: dict[str, Any] | None = None, on_notify: Notify | None = None
    ) -> Any:
        return self.wait(self.send(method, params), on_notify)

    def close(self) -> None:
        self.reader.close()
        self.sock.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def start_daemon(paths: Paths, timeout: float = 30.0) -> None:
    """Start `hearth daemon` in the background and wait until it answers.

    When another daemon holds the lock (another client started one a moment ago and
    it is still starting), ours exits with EXIT_ALREADY_RUNNING: wait for that one.
    A config the daemon would refuse is reported here, before anything is spawned."""
    try:
        Config.load(paths.config_file)
    except ValueError as exc:
        raise DaemonUnavailable(f"the daemon cannot start: {exc}") from None
    paths.ensure()
    log = paths.logs / "daemon.out"
    with open(log, "ab") as out:
        start = out.tell()
        proc = subprocess.Popen(
            [sys.executable, "-m", "daemon", "daemon"],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
        )  # fmt: skip
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() not in (None, EXIT_ALREADY_RUNNING):
            why = _last_line(log, start)
            raise DaemonUnavailable(
                f"the daemon exited at start: {why}" if why else
                f"the daemon exited at start (status {proc.returncode}); see {log}"
            )  # fmt: skip
        try:
            Client.connect(paths.socket).close()
            return
        except DaemonUnavailable:
            time.sleep(0.05)
    raise DaemonUnavailable(
        f"the daemon did not answer within {timeout:.0f}s; see {paths.logs / 'daemon.log'}"
    )


def _last_line(log: Path, start: int) -> str:
    """What the daemon said last before exiting (its own `hearth: …` line, if any)."""
    try:
        with open(log, "rb") as fh:
            fh.seek(start)
            lines = [ln.strip() for ln in fh.read(64 << 10).decode(errors="replace").splitlines()]
    except OSError:
        return ""
    said = [ln for ln in lines if ln]
    ours = [ln.removeprefix("hearth: ") for ln in said if ln.startswith("hearth: ")]
    return (ours or said or [""])[-1][:500]


def stop_daemon(paths: Paths, timeout: float = 15.0) -> int | None:
    """Ask the running daemon to stop (SIGTERM) and wait for it; its pid, None if none ran."""
    try:
        client = Client.connect(paths.socket)
    except DaemonUnavailable:
        return None
    with client:
        pid = int(client.call("status")["pid"])
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return pid  # it stopped on its own meanwhile
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.05)
    return pid


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (our own child, not yet reaped) has exited
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def connect(paths: Paths, autostart: bool = True, name: str = "hearth-cli") -> Client:
    """Connect to the daemon, starting one when none answers."""
    try:
        return Client.connect(paths.socket, name)
    except DaemonUnavailable:
        if not autostart:
            raise
    start_daemon(paths)  # if another client starts one at the same moment, we wait for theirs
    return Client.connect(paths.socket, name)
