"""Who is at the other end of the daemon's socket: refuse its own sandboxed children.

The socket is 0600 and every peer's uid is checked, so only the user's own processes
connect. A runner (or a plugin) runs as that user too, but inside a sandbox meant to
keep it off the network: reaching the daemon would let it change the network policy
and send data out through the gateway. So a peer in another network namespace than the
daemon's is refused — a general rule, which holds for anything sandboxed that way, not
a list of pids. Where the peer's namespace cannot be read (a daemon in a user namespace
of its own, as under systemd's PrivateUsers=, or a peer that is not dumpable), a peer the
daemon started (a descendant) is refused and any other is let through. The runners, and
whatever they start, are refused by pid too, even when they share the daemon's namespace
(a runner the user let run unconfined). Elsewhere (macOS) runners have no network at
all, Unix sockets included.
"""

from __future__ import annotations

import os
import socket
import struct
import sys


def peer_pid(sock: socket.socket) -> int | None:
    """The pid of the process at the other end of a Unix socket, where the OS says it."""
    if hasattr(socket, "SO_PEERCRED"):
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        return int(struct.unpack("3i", raw)[0])
    if sys.platform == "darwin":  # LOCAL_PEERPID at SOL_LOCAL
        return int(sock.getsockopt(0, 0x002))
    return None


def _stat(pid: int) -> list[bytes] | None:
    """The fields of /proc/PID/stat after the command name (state, ppid, …)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            stat = file.read()
        return stat[stat.rindex(b")") + 2 :].split()
    except (OSError, ValueError):
        return None


def start_time(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot): with the pid, names one process for
    good, where a pid alone may be reused. None where /proc does not say."""
    fields = _stat(pid)
    return int(fields[19]) if fields and len(fields) > 19 else None


def _ancestry(pid: int) -> list[int]:
    """``pid`` and its parents, as far as /proc shows them (Linux)."""
    chain = [pid]
    while pid > 1 and len(chain) < 64:
        fields = _stat(pid)
        if not fields or len(fields) < 2:
            break
        pid = int(fields[1])
        chain.append(pid)
    return chain


def refusal(sock: socket.socket, runners: frozenset[int] = frozenset()) -> str | None:
    """Why this (same-user) peer may not talk to the daemon, or None when it may.
    ``runners`` are the daemon's runner pids: they and their children are refused even
    where they share the daemon's namespace (a runner the user let run unconfined)."""
    try:
        pid = peer_pid(sock)
    except OSError:
        pid = None
    if pid and runners and sys.platform.startswith("linux"):
        runner = next((p for p in _ancestry(pid) if p in runners), None)
        if runner is not None:
            return f"pid {pid} is (or was started by) the model runner {runner}"
    if not sys.platform.startswith("linux"):
        return None
    if not pid:
        return "its process cannot be identified"
    try:
        mine = os.readlink("/proc/self/ns/net")
        theirs = os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        # Not ours to read: the daemon runs in a user namespace of its own (systemd's
        # PrivateUsers=), or the peer is not dumpable. Only the daemon's own children
        # must show where they are; anyone else passed the uid check.
        if os.getpid() in _ancestry(pid)[1:]:
            return f"pid {pid} was started by the daemon and its namespace cannot be read"
        return None
    if theirs != mine:
        return f"pid {pid} runs in another network namespace (a sandboxed runner or plugin)"
    return None
