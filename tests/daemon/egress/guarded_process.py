"""Run as a child process by test_guard.py: install the socket guard, try to get out.

Prints one JSON object: what each attempt did, how long it took, the guard's counter,
and which socket events a policy refusal caused. Everything it connects to is on
127.0.0.1 or a Unix socket it starts itself; the outside addresses are TEST-NET ones.
"""

from __future__ import annotations

import contextlib
import errno
import json
import socket
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from daemon.egress import guard
from daemon.egress.audit import AuditLog
from daemon.egress.gateway import Gateway
from daemon.egress.policy import Mode, Policy
from daemon.errors import EgressDenied

results: dict[str, Any] = {}
socket_events: list[str] = []


def watch(event: str, args: tuple[object, ...]) -> None:
    if event.startswith("socket.") and event != "socket.__new__":
        socket_events.append(event)


def attempt(name: str, action: Any) -> None:
    started = time.monotonic()
    try:
        results[name] = {"outcome": action()}
    except Exception as exc:
        reason = getattr(exc, "reason", None)
        results[name] = {"error": type(exc).__name__, "reason": type(reason).__name__}
    results[name]["seconds"] = time.monotonic() - started


def fetch_testnet() -> None:
    urllib.request.urlopen("http://203.0.113.1/", timeout=5)


def connect_testnet() -> None:
    socket.create_connection(("198.51.100.7", 80), timeout=5)


def lookup_name() -> None:
    socket.getaddrinfo("hearth-guard-test.invalid", 443)


def send_datagram() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.sendto(b"hello", ("192.0.2.53", 53))


def connect_nonblocking() -> dict[str, Any]:
    """A non-blocking connect returns at once with the SYN in flight, so if it got past the
    guard the kernel would list the socket (SYN_SENT) in /proc/net/tcp."""
    sock = socket.socket()
    sock.setblocking(False)
    with contextlib.suppress(guard.EgressBlocked):
        sock.connect(("203.0.113.9", 443))
    try:
        sock.getpeername()
        connected = True
    except OSError as exc:
        connected = exc.errno != errno.ENOTCONN
    remote = socket.inet_aton("203.0.113.9")[::-1].hex().upper() + ":01BB"
    table = Path("/proc/net/tcp")
    in_kernel = (
        remote in table.read_text() if table.exists() and sys.byteorder == "little" else None
    )
    sock.close()
    return {"connected": connected, "in_kernel_table": in_kernel}


def loopback_echo(allowed: bool) -> str:
    """An echo server on a loopback port: refused, unless the guard lists that port."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    guard.install().loopback_ports = frozenset({port} if allowed else ())

    def echo() -> None:
        conn, _ = server.accept()
        with conn:
            conn.sendall(conn.recv(100).upper())

    threading.Thread(target=echo, daemon=True).start()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
        client.sendall(b"ping")
        answer = client.recv(100).decode()
    server.close()
    return answer


def unix_socket() -> str:
    path = Path(tempfile.mkdtemp()) / "s"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen()
    threading.Thread(target=lambda: server.accept()[0].sendall(b"unix ok"), daemon=True).start()
    with socket.socket(socket.AF_UNIX) as client:
        client.connect(str(path))
        return client.recv(100).decode()


class Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "5")
        self.end_headers()
        self.wfile.write(b"hello")

    def log_message(self, format: str, *args: Any) -> None:
        pass


def main() -> None:
    key = Ed25519PrivateKey.generate()
    log = AuditLog.open_files(Path(sys.argv[1]), Path(sys.argv[2]), key, create=True)
    installed = guard.install(log.append)
    results["installed_once"] = guard.install() is installed
    sys.addaudithook(watch)

    for name, action in [
        ("urlopen", fetch_testnet),
        ("create_connection", connect_testnet),
        ("getaddrinfo", lookup_name),
        ("sendto", send_datagram),
        ("nonblocking_connect", connect_nonblocking),
        ("loopback", lambda: loopback_echo(False)),
        ("loopback_listed", lambda: loopback_echo(True)),
        ("unix", unix_socket),
    ]:
        attempt(name, action)
    results["blocked_count"] = installed.blocked_count

    http = ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    threading.Thread(target=http.serve_forever, args=(0.05,), daemon=True).start()
    gateway = Gateway(Policy(Mode.ALLOW_LISTED).allow("127.0.0.1", "test"), log)
    url = f"http://127.0.0.1:{http.server_address[1]}/"
    attempt("gateway_local", lambda: gateway.request("test", "guard test", "GET", url).text)

    gateway.policy = Policy()  # offline
    socket_events.clear()
    attempt(
        "gateway_offline",
        lambda: gateway.request("test", "guard test", "GET", "https://hearth.invalid/"),
    )
    results["socket_events_while_denied"] = list(socket_events)
    results["denied_is_egress_denied"] = (
        results["gateway_offline"].get("error") == EgressDenied.__name__
    )

    http.shutdown()
    gateway.close()
    log.close()
    print(json.dumps(results))


if __name__ == "__main__":
    main()
