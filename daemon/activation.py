"""The daemon's listening socket, and its handshake with a service manager.

Started by hand (or by a client), the daemon binds its socket itself. Started by
systemd (a socket unit: ``LISTEN_FDS``/``LISTEN_PID``, fd 3) or launchd (the agent's
``Sockets``), it is handed a socket the manager bound before the first client came.
That socket is only used once checked to be the one Hearth's own would be: a
listening Unix stream socket, bound at the expected path, owned by this user and
reachable by no one else. Anything else (a TCP port, another path, a world-writable
socket) is refused with a line saying what was passed and what was expected,
because serving on it would expose the user's assistant to whoever can reach it.

``sd_notify`` tells systemd (``Type=notify``) when the daemon is ready: a datagram on
``$NOTIFY_SOCKET``, no library needed.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
import stat
import sys
from collections.abc import MutableMapping
from dataclasses import dataclass
from pathlib import Path

SD_LISTEN_FDS_START = 3  # systemd passes sockets from this fd on
LAUNCHD_SOCKET_ENV = "HEARTH_LAUNCHD_SOCKET"  # set by our agent plist: the Sockets key's name


class WrongSocket(Exception):
    """The service manager passed a socket the daemon must not serve on."""


@dataclass
class Listener:
    """The listening socket, and whether the service manager owns its file."""

    sock: socket.socket
    inherited: bool  # True: never unlink the path, the manager keeps listening on it

    def close(self, path: Path) -> None:
        self.sock.close()
        if not self.inherited:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


def bind_socket(path: Path) -> socket.socket:
    """Bind and listen on ``path``, born 0600 (umask): no window where others may connect."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        sock.bind(str(path))
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    sock.listen(128)
    return sock


def inherited_socket(
    path: Path, environ: MutableMapping[str, str] | None = None
) -> socket.socket | None:
    """The socket systemd or launchd passed us, checked; None when started without one.

    systemd's variables are removed once read, so the runners (our children) never
    mistake them for their own.
    """
    env = os.environ if environ is None else environ
    fd = _systemd_fd(env)
    if fd is None:
        fd = _launchd_fd(env)
    if fd is None:
        return None
    try:
        sock = socket.socket(fileno=fd)  # family and type are read from the fd
    except OSError:
        msg = f"refusing the inherited fd {fd}: it is not a socket; expected {_wanted(path)}"
        raise WrongSocket(msg) from None
    try:
        check_socket(sock, path)
    except WrongSocket:
        sock.detach()  # leave the fd to its owner; we refuse it and exit
        raise
    os.set_inheritable(fd, False)
    return sock


def check_socket(sock: socket.socket, path: Path) -> None:
    """Raise WrongSocket unless ``sock`` is what the daemon would have bound at ``path``."""
    if sock.family != socket.AF_UNIX:
        kind = "TCP/IP" if sock.family in (socket.AF_INET, socket.AF_INET6) else "non-Unix"
        raise WrongSocket(
            f"refusing the inherited socket: it is a {kind} socket ({sock.family.name}, "
            f"{_name(sock)}), and Hearth serves only on {_wanted(path)}"
        )
    if sock.type != socket.SOCK_STREAM:
        raise WrongSocket(
            f"refusing the inherited socket at {_name(sock)}: it is {sock.type.name}, "
            f"expected {_wanted(path)}"
        )
    if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
        raise WrongSocket(f"refusing the inherited socket at {_name(sock)}: it is not listening")
    bound = sock.getsockname()
    if bound != str(path):
        raise WrongSocket(
            f"refusing the inherited socket: it is bound at {_name(sock)}, expected {path} "
            "(check ListenStream= in the socket unit, or HEARTH_HOME)"
        )
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise WrongSocket(f"refusing the inherited socket: {path} no longer exists") from None
    if not stat.S_ISSOCK(st.st_mode):
        raise WrongSocket(f"refusing the inherited socket: {path} is not a socket file")
    if st.st_uid != os.getuid():
        raise WrongSocket(f"refusing the inherited socket: {path} belongs to uid {st.st_uid}")
    if st.st_mode & 0o077:
        raise WrongSocket(
            f"refusing the inherited socket: {path} has mode {stat.S_IMODE(st.st_mode):04o}, "
            "expected 0600 (SocketMode=0600 in the socket unit)"
        )


def _systemd_fd(env: MutableMapping[str, str]) -> int | None:
    pid, count = env.pop("LISTEN_PID", None), env.pop("LISTEN_FDS", None)
    env.pop("LISTEN_FDNAMES", None)
    if pid is None or count is None or pid != str(os.getpid()):
        return None  # not for us (a parent's variables that leaked through)
    if count != "1":
        raise WrongSocket(f"expected one inherited socket, got LISTEN_FDS={count}")
    return SD_LISTEN_FDS_START


def _launchd_fd(env: MutableMapping[str, str]) -> int | None:
    """The agent plist's socket, through launch_activate_socket(3) (macOS 10.10+)."""
    name = env.pop(LAUNCHD_SOCKET_ENV, None)
    if name is None:
        return None
    if sys.platform != "darwin":
        raise WrongSocket(f"{LAUNCHD_SOCKET_ENV} is set, but launchd exists only on macOS")
    libc = ctypes.CDLL(None, use_errno=True)
    fds = ctypes.POINTER(ctypes.c_int)()
    count = ctypes.c_size_t()
    err = libc.launch_activate_socket(name.encode(), ctypes.byref(fds), ctypes.byref(count))
    if err:
        raise WrongSocket(f"launchd has no socket {name!r} for us ({os.strerror(err)})")
    found = [fds[i] for i in range(count.value)]
    libc.free(fds)
    if len(found) != 1:
        raise WrongSocket(f"expected one socket from launchd's {name!r}, got {len(found)}")
    return found[0]


def sd_notify(state: str, environ: MutableMapping[str, str] | None = None) -> bool:
    """Send ``state`` (e.g. ``READY=1``) to systemd; False when not run by it."""
    address = (os.environ if environ is None else environ).get("NOTIFY_SOCKET")
    if not address or address[0] not in "/@":
        return False
    target = "\0" + address[1:] if address[0] == "@" else address  # @: abstract namespace
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        try:
            sock.sendto(state.encode(), target)
        except OSError:
            return False
    return True


def _wanted(path: Path) -> str:
    return f"a listening Unix stream socket at {path} with mode 0600"


def _name(sock: socket.socket) -> str:
    try:
        name = sock.getsockname()
    except OSError:
        return "?"
    if isinstance(name, tuple):
        return f"{name[0]}:{name[1]}"
    return repr(name) if not name or isinstance(name, bytes) else str(name)
