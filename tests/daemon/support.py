"""Helpers for tests that race the daemon: runner processes seen from /proc, raw sockets.

A leaked runner is one the daemon has lost track of, so asking the daemon (`status`) cannot
find it: these helpers look at the processes themselves.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from tests.conftest import Daemon

T = TypeVar("T")


def runner_pids(daemon: Daemon) -> set[int]:
    """Live runner processes of this daemon: `daemon.engine.runner` in their command line,
    and this daemon's HEARTH_HOME in their environment or this daemon as their parent."""
    home = f"HEARTH_HOME={daemon.home}".encode()
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if b"daemon.engine.runner" not in (entry / "cmdline").read_bytes():
                continue
            ours = home in (entry / "environ").read_bytes().split(b"\0")
            state, ppid = _state(entry)
        except OSError:  # gone meanwhile
            continue
        if state != "Z" and (ours or ppid == daemon.proc.pid):
            found.add(int(entry.name))
    return found


def zombies(daemon: Daemon) -> set[int]:
    """Children of the daemon that exited and were never reaped."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                state, ppid = _state(entry)
            except OSError:
                continue
            if state == "Z" and ppid == daemon.proc.pid:
                found.add(int(entry.name))
    return found


def _state(entry: Path) -> tuple[str, int]:
    stat = (entry / "stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name may hold spaces
    return fields[0], int(fields[1])


def until(check: Callable[[], T], what: str, timeout: float = 120.0) -> T:
    """Poll ``check`` until it returns something true; fail saying ``what`` never came."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f}s waiting for {what}"
        time.sleep(0.02)


def raw(daemon: Daemon, timeout: float = 120.0) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(daemon.paths.socket))
    sock.settimeout(timeout)
    return sock


def line(rid: Any, method: str, params: dict[str, Any] | None = None) -> bytes:
    """One request line; ``rid=...`` (Ellipsis) leaves the id out: a notification."""
    msg: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": params or {}}
    if rid is not ...:
        msg["id"] = rid
    return json.dumps(msg).encode() + b"\n"


class Lines:
    """Reads JSON lines from a raw socket; replies (not notifications) are kept in order."""

    def __init__(self, sock: socket.socket) -> None:
        self.reader = sock.makefile("rb")
        self.replies: list[dict[str, Any]] = []

    def until(self, done: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """Read until a reply for which ``done`` holds; return it."""
        while True:
            data = self.reader.readline()
            assert data, "the daemon closed the connection"
            msg: dict[str, Any] = json.loads(data)
            if "method" in msg:
                continue
            self.replies.append(msg)
            if done(msg):
                return msg

    def reply_to(self, rid: Any) -> dict[str, Any]:
        return self.until(lambda m: m.get("id") == rid)


def default_model(daemon: Daemon) -> str:
    with daemon.client() as c:
        return str(c.call("models.list")["default"])


def log_text(daemon: Daemon) -> str:
    return (daemon.home / "logs" / "daemon.log").read_text(errors="replace")


def unhandled(daemon: Daemon) -> list[str]:
    """Lines of the daemon's log that tell of an exception nothing handled."""
    marks = ("Traceback", "Task exception was never retrieved", "Exception in callback",
             "UnicodeEncodeError", " ERROR ")  # fmt: skip
    return [ln for ln in log_text(daemon).splitlines() if any(m in ln for m in marks)]
