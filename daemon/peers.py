"""Who is at the other end of the daemon's socket: refuse its own sandboxed children.

The socket is 0600 and every peer's uid is checked, so only the user's own processes
connect. A runner (or a plugin) runs as that user too, but inside a sandbox meant to
keep it off the network: reaching the daemon would let it change the network policy
and send data out through the gateway. So a peer in another network namespace than the
daemon's is refused — a general rule, which holds for anything sandboxed that way, not
a list of pids. A peer whose namespace cannot be read (it is gone, or hides itself) is
refused too. Elsewhere (macOS) runners have no network at all, Unix sockets included.
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


def refusal(sock: socket.socket) -> str | None:
    """Why this (same-user) peer may not talk to the daemon, or None when it may."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        pid = peer_pid(sock)
    except OSError:
        pid = None
    if not pid:
        return "its process cannot be identified"
    try:
        mine = os.readlink("/proc/self/ns/net")
        theirs = os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return f"the network namespace of pid {pid} cannot be read"
    if theirs != mine:
        return f"pid {pid} runs in another network namespace (a sandboxed runner or plugin)"
    return None
