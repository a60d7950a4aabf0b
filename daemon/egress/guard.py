"""The socket guard: no code in the daemon reaches the internet except through the gateway.

A ``sys.addaudithook`` hook sees ``socket.connect``, ``socket.getaddrinfo``,
``socket.sendto`` and the other name-lookup events *before* the syscall, so raising
there refuses the attempt before any packet (or DNS query) leaves. Unix sockets and
lookups of local names pass. Loopback *ports* do not: a proxy or a DNS resolver
listening on 127.0.0.1 (127.0.0.53:53 forwards upstream) leads straight out, so only
the ports in ``loopback_ports`` pass, and the daemon needs none. Anything else must run
inside :func:`passage`, which the gateway opens only around a call the policy allowed,
and only for the host it allowed (and the proxy the user configured for it).

In a runner the guard refuses every socket (``forbid_all``): it needs none, and the
refusal is reported to the daemon's audit log before the kernel's own refusal (the
runner's seccomp filter) would leave no trace.

Audit hooks cannot be removed, so there is one guard per process (:func:`install` is
idempotent); where refusals are recorded is settable (:meth:`SocketGuard.set_sink`).
The guard covers Python code in this process: a child process or a C library opening
its own sockets is outside its reach (the runner and plugins are sandboxed instead).
"""

from __future__ import annotations

import errno
import ipaddress
import json
import socket
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import FrameType
from typing import NamedTuple, TextIO

from daemon.egress.policy import normalize_host

Sink = Callable[[Mapping[str, object]], object]

_ADDRESS_EVENTS = frozenset({"socket.connect", "socket.sendto", "socket.sendmsg"})
_LOOKUP_EVENTS = frozenset(
    {"socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr", "socket.getnameinfo"}
)
_EVENTS = _ADDRESS_EVENTS | _LOOKUP_EVENTS
_NEW = "socket.__new__"
_STACK_DEPTH = 8

_passage: ContextVar[frozenset[str] | None] = ContextVar("hearth_egress_passage", default=None)


class EgressBlocked(PermissionError):
    """A connection or name lookup outside the gateway; a PermissionError so code that
    handles OSError (urllib, httpx) fails the way it would without a network."""


class Target(NamedTuple):
    host: str
    port: int | None


@contextmanager
def passage(host: str, *also: str) -> Iterator[None]:
    """Let this thread (or task) look up ``host`` (and the ``also`` hosts: a proxy) and
    connect to what they resolve to."""
    token = _passage.set(frozenset(normalize_host(h) for h in (host, *also)))
    try:
        yield
    finally:
        _passage.reset(token)


def drop_proxy_settings(environ: MutableMapping[str, str]) -> list[str]:
    """Remove proxy settings (``http_proxy``, ``ALL_PROXY``, ``no_proxy``, …) from the
    environment, so no library sends anything through a proxy the user's shell happened
    to name; returns the names removed (never the values: they may hold passwords).
    A proxy is used only when configured in Hearth, by the gateway."""
    names = sorted(k for k in environ if k.lower().endswith("_proxy"))
    for name in names:
        del environ[name]
    return names


def is_local(host: object) -> bool:
    """Loopback, ``localhost``, or no host at all (a passive or local lookup)."""
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    name = normalize_host(host).partition("%")[0]  # drop an IPv6 scope id
    if name in ("", "localhost"):
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_loopback


def _address_target(sock: object, address: object, loopback_ports: frozenset[int]) -> Target | None:
    """The remote end of a connect/send, or None when it may proceed: a Unix socket, a
    loopback port in ``loopback_ports``, or a send on a socket whose connect was judged."""
    family = getattr(sock, "family", None)
    if family == getattr(socket, "AF_UNIX", None) or address is None:
        return None
    if family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple):
        host, port = address[0], address[1] if len(address) > 1 else None
        if is_local(host) and port in loopback_ports:
            return None
        return Target(str(host), port if isinstance(port, int) else None)
    return Target(repr(address), None)  # raw, packet or other families: never egress


def judge(
    event: str,
    args: tuple[object, ...],
    allowed: frozenset[str] | None,
    loopback_ports: frozenset[int] = frozenset(),
) -> Target | None:
    """The target to refuse for this audit event, or None to let it proceed.

    ``allowed`` holds the hosts of the gateway call in progress: their names may be
    looked up, and the addresses they resolved to may be connected to.
    """
    if event in _ADDRESS_EVENTS:
        target = _address_target(args[0], args[1] if len(args) > 1 else None, loopback_ports)
        return None if allowed is not None else target
    if event == "socket.getnameinfo":
        sockaddr = args[0]
        host = sockaddr[0] if isinstance(sockaddr, tuple) and sockaddr else sockaddr
        port = sockaddr[1] if isinstance(sockaddr, tuple) and len(sockaddr) > 1 else None
    else:
        host = args[0]
        port = args[1] if event == "socket.getaddrinfo" and len(args) > 1 else None
    if is_local(host):
        return None
    name = host.decode("ascii", "replace") if isinstance(host, bytes) else str(host)
    if allowed is not None and normalize_host(name) in allowed:
        return None
    return Target(name, port if isinstance(port, int) else None)


def _origin() -> tuple[str, list[str]]:
    """Who tried: the innermost module outside the standard library, and a short stack
    of module:line entries: the socket call itself, then the frames outside the standard
    library (module names, not file paths, which would name the user)."""
    frame: FrameType | None = sys._getframe(3)  # skip _origin, _record and the hook
    caller: str | None = None
    stack: list[str] = []
    while frame is not None and len(stack) < _STACK_DEPTH:
        module = str(frame.f_globals.get("__name__", "?"))
        stdlib = module.partition(".")[0] in sys.stdlib_module_names
        if not stack or not stdlib:
            stack.append(f"{module}:{frame.f_lineno} in {frame.f_code.co_name}")
        if caller is None and not stdlib:
            caller = module
        frame = frame.f_back
    return caller or "unknown", stack


class SocketGuard:
    """Refuses internet sockets opened outside the gateway, counts and records them."""

    def __init__(self) -> None:
        self._sink: Sink | None = None
        self._lock = threading.Lock()
        self._recording = threading.local()
        self._blocked = 0
        self._sink_failures = 0
        # The loopback ports code outside the gateway may reach. The daemon needs none:
        # its keychain (D-Bus) and its clients use Unix sockets.
        self.loopback_ports: frozenset[int] = frozenset()
        self.forbid_all = False  # a runner: no socket of any kind, not even a lookup

    @property
    def blocked_count(self) -> int:
        return self._blocked

    @property
    def sink_failures(self) -> int:
        """Refusals that could not be recorded (the attempt was still refused)."""
        return self._sink_failures

    def set_sink(self, sink: Sink | None) -> None:
        """Where refusals are recorded, e.g. ``AuditLog.append``; None records nothing."""
        self._sink = sink

    def hook(self, event: str, args: tuple[object, ...]) -> None:
        if self.forbid_all and (event in _EVENTS or event == _NEW):
            target: Target | None = _any_target(event, args)
        elif event in _EVENTS:
            target = judge(event, args, _passage.get(), self.loopback_ports)
        else:
            return
        if target is None:
            return
        with self._lock:
            self._blocked += 1
        self._record(event, target)
        where = target.host if target.port is None else f"{target.host}:{target.port}"
        raise EgressBlocked(
            errno.EACCES,
            f"Hearth blocked {event} to {where}: only the egress gateway may reach the network",
        )

    def _record(self, event: str, target: Target) -> None:
        sink = self._sink
        if sink is None or getattr(self._recording, "active", False):
            return  # nothing to record into, or the sink itself tried to connect
        caller, stack = _origin()
        self._recording.active = True
        try:
            sink(
                {
                    "phase": "blocked",
                    "caller": caller,
                    "method": event,
                    "host": target.host,
                    "port": target.port,
                    "decision": "block",
                    "error": EgressBlocked.__name__,
                    "stack": stack,
                }
            )
        except Exception:
            with self._lock:
                self._sink_failures += 1
        finally:
            self._recording.active = False


def _any_target(event: str, args: tuple[object, ...]) -> Target:
    """What a process that may use no socket at all tried to reach."""
    if event == _NEW:  # (socket, family, type, proto)
        family = args[1] if len(args) > 1 else None
        try:
            name = socket.AddressFamily(family).name if isinstance(family, int) else "?"
        except ValueError:
            name = f"family {family}"
        return Target(f"a new {name} socket", None)
    if event in _ADDRESS_EVENTS:
        address = args[1] if len(args) > 1 else None
        if isinstance(address, tuple) and address:
            port = address[1] if len(address) > 1 and isinstance(address[1], int) else None
            return Target(str(address[0]), port)
        return Target("a Unix socket" if isinstance(address, str | bytes) else "a socket", None)
    host = args[0][0] if event == "socket.getnameinfo" and isinstance(args[0], tuple) else args[0]
    return Target(host.decode("ascii", "replace") if isinstance(host, bytes) else str(host), None)


def report_to(stream: TextIO) -> Sink:
    """A sink for a process without an audit log (a runner): one JSON line per refusal."""

    def sink(entry: Mapping[str, object]) -> None:
        stream.write(json.dumps({"hearth_egress_blocked": dict(entry)}) + "\n")
        stream.flush()

    return sink


_installed: SocketGuard | None = None  # process-wide by nature: audit hooks are forever
_install_lock = threading.Lock()


def install(sink: Sink | None = None) -> SocketGuard:
    """Install the process's guard once (later calls return it); set its sink if given."""
    global _installed
    with _install_lock:
        if _installed is None:
            _installed = SocketGuard()
            sys.addaudithook(_installed.hook)
        guard = _installed
    if sink is not None:
        guard.set_sink(sink)
    return guard
