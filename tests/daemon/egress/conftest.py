"""Shared pieces for the egress tests: a signing key, an audit log, local HTTP servers."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from daemon.egress.audit import AuditLog
from daemon.egress.gateway import Gateway
from daemon.egress.policy import Mode, Policy

Serve = Callable[[type[BaseHTTPRequestHandler]], str]


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that keeps the test output clean and speaks HTTP/1.1."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def send_body(self, status: int, body: bytes, **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


@pytest.fixture
def serve() -> Iterator[Serve]:
    """Start HTTP servers on 127.0.0.1 for one test; all stop when it ends."""
    servers: list[ThreadingHTTPServer] = []

    def start(handler: type[BaseHTTPRequestHandler]) -> str:
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    return tmp_path / "logs" / "egress.jsonl"


@pytest.fixture
def checkpoint_path(tmp_path: Path) -> Path:
    return tmp_path / "keychain" / "egress-checkpoint.json"


@pytest.fixture
def audit(log_path: Path, checkpoint_path: Path, key: Ed25519PrivateKey) -> Iterator[AuditLog]:
    log = AuditLog.open_files(log_path, checkpoint_path, key, checkpoint_every=8, create=True)
    yield log
    log.close()


@pytest.fixture
def local_policy() -> Policy:
    """Allow-listed, with rules for the local servers (127.0.0.1) and nothing else."""
    return Policy(Mode.ALLOW_LISTED).allow("127.0.0.1", "*")


@pytest.fixture
def gateway(audit: AuditLog, local_policy: Policy) -> Iterator[Gateway]:
    gw = Gateway(local_policy, audit)
    yield gw
    gw.close()
