"""The socket server: JSON-RPC errors, limits, cancel, concurrency and peer checks."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from typing import Any

import pytest

from daemon.client import Client
from daemon.errors import Busy, UnsupportedProtocol
from tests.conftest import Daemon, make_home, start_daemon

LONG = {"messages": [{"role": "user", "content": "Write a very long story about a dragon."}]}


def raw(daemon: Daemon) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(daemon.paths.socket))
    sock.settimeout(10)
    return sock


def exchange(sock: socket.socket, data: bytes) -> dict[str, Any]:
    sock.sendall(data)
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = sock.recv(65536)
        assert chunk, "connection closed"
        buf += chunk
    return json.loads(buf)  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("line", "code"),
    [
        (b"{not json\n", -32700),
        (b"\xff\xfe\n", -32700),
        (b'"just a string"\n', -32600),
        (b'{"id": 1, "method": "status"}\n', -32600),  # no "jsonrpc": "2.0"
        (b'[{"jsonrpc": "2.0", "id": 1, "method": "status"}]\n', -32600),  # batch
        (b'{"jsonrpc": "2.0", "id": 1, "method": "no.such"}\n', -32601),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "chat", "params": {"messages": 3}}\n', -32602),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "chat", "params": [1]}\n', -32600),
    ],
)
def test_standard_errors_keep_the_connection_open(daemon: Daemon, line: bytes, code: int) -> None:
    with raw(daemon) as sock:
        reply = exchange(sock, line)
        assert reply["error"]["code"] == code
        assert reply["error"]["message"]
        ok = exchange(sock, b'{"jsonrpc": "2.0", "id": 2, "method": "status"}\n')
        assert ok["id"] == 2 and ok["result"]["pid"] == daemon.proc.pid


def test_hello_reports_server_and_refuses_other_protocol_versions(client: Client) -> None:
    assert client.server["server"] == "hearth" and client.server["protocol"] == 1
    assert "chat" in client.server["capabilities"]
    with pytest.raises(UnsupportedProtocol) as err:
        client.call("hello", {"client": "t", "protocol": 99})
    assert "protocol 1" in err.value.message


def test_an_oversized_line_is_refused_and_only_that_connection_closed(daemon: Daemon) -> None:
    with raw(daemon) as sock:
        # The daemon may hang up before we finish writing.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(
                b'{"jsonrpc": "2.0", "id": 1, "method": "status", "x": "' + b"a" * (3 << 20)
            )
        data = b""
        try:
            while chunk := sock.recv(65536):
                data += chunk
        except ConnectionResetError:
            pass
        reply = json.loads(data.splitlines()[0])
        assert reply["error"]["data"]["kind"] == "line_too_long"
    with daemon.client() as other:
        assert other.call("status")["pid"] == daemon.proc.pid


def test_status_describes_the_daemon(daemon: Daemon, client: Client) -> None:
    client.call("chat", {**LONG, "options": {"max_tokens": 2}})
    status = client.call("status")
    assert status["pid"] == daemon.proc.pid
    assert status["socket"] == str(daemon.paths.socket)
    assert status["engine"] in ("llamacpp", "mlx")
    assert status["models_loaded"] and status["runners"][0]["pid"] != daemon.proc.pid
    assert status["queue"] == 0
    assert status["network"] == {"mode": "offline", "blocked": 0, "audit": "open"}


def test_cancel_stops_generation_within_a_token(client: Client) -> None:
    deltas: list[float] = []
    cancelled_at: list[float] = []
    tokens_then: list[int] = []
    rid = client.send("chat", {**LONG, "options": {"temperature": 0, "max_tokens": 2000}})

    def on_delta(_: str, p: dict[str, Any]) -> None:
        deltas.append(time.monotonic())
        if len(deltas) == 5:
            client.cancel(rid)
            cancelled_at.append(time.monotonic())
            tokens_then.append(p["tokens"])

    result = client.wait(rid, on_delta)
    assert result["finish_reason"] == "cancelled"
    after = [t for t in deltas if t > cancelled_at[0]]
    assert len(after) <= 2  # the token in flight, at most
    # Tokens made after the delta that triggered the cancel: the ones made while the
    # cancel travelled (client → daemon → runner), then the token in flight.
    assert result["tokens"]["completion"] <= tokens_then[0] + 3


def test_cancel_of_a_queued_request_ends_it_as_cancelled(daemon: Daemon) -> None:
    with daemon.client() as a, daemon.client() as b:
        busy = a.send("chat", {**LONG, "options": {"temperature": 0, "max_tokens": 200}})
        time.sleep(0.05)
        waiting = b.send("chat", {**LONG, "options": {"max_tokens": 200}})
        b.cancel(waiting)
        assert b.wait(waiting)["finish_reason"] == "cancelled"
        a.cancel(busy)
        assert a.wait(busy)["finish_reason"] == "cancelled"


def test_a_client_that_disconnects_mid_stream_cancels_its_request(daemon: Daemon) -> None:
    log = daemon.home / "logs" / "daemon.log"
    before = log.read_text().count("request cancelled after")
    c = daemon.client()
    c.send("chat", {**LONG, "options": {"temperature": 0, "max_tokens": 2000}})
    c.reader.readline()  # first delta
    c.close()
    deadline = time.monotonic() + 120
    lines: list[str] = []
    while time.monotonic() < deadline:
        lines = [ln for ln in log.read_text().splitlines() if "request cancelled after" in ln]
        if len(lines) > before:
            break
        time.sleep(0.1)
    assert len(lines) > before, "the abandoned request was not cancelled"
    assert int(lines[-1].split("after ")[1].split()[0]) < 100  # not 2000 tokens for nobody


@pytest.mark.parametrize("n", [2, 16])
def test_concurrent_clients_are_all_served(daemon: Daemon, n: int) -> None:
    results: dict[int, Any] = {}
    errors: list[BaseException] = []

    def one(i: int) -> None:
        try:
            with daemon.client(f"c{i}") as c:
                msg = [{"role": "user", "content": f"Say the number {i}."}]
                results[i] = c.call("chat", {"messages": msg, "options": {"max_tokens": 12}})
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    assert sorted(results) == list(range(n))
    assert all(r["text"] and r["tokens"]["completion"] > 0 for r in results.values())


def test_a_full_queue_answers_busy_and_keeps_serving() -> None:
    home = make_home("queue_size = 1\nkeep_alive = -1\n")
    daemon = start_daemon(home)
    try:
        with daemon.client() as c:
            ids = [c.send("chat", {**LONG, "options": {"max_tokens": 40}}) for _ in range(4)]
            outcomes = []
            for rid in ids:
                try:
                    outcomes.append(c.wait(rid)["finish_reason"])
                except Busy as exc:
                    assert exc.data.get("retry_after_ms")
                    outcomes.append("busy")
            assert "busy" in outcomes and outcomes[0] != "busy"
            assert c.call("chat", {**LONG, "options": {"max_tokens": 2}})["text"]
    finally:
        daemon.stop()


def test_peers_of_another_uid_are_refused(daemon: Daemon) -> None:
    # Loosen the socket and its directories so the kernel lets `nobody` connect at all:
    # the daemon's own uid check is what must refuse it.
    sock_path = daemon.paths.socket
    for path in (daemon.home, sock_path.parent):
        os.chmod(path, 0o755)
    os.chmod(sock_path, 0o777)
    probe = (
        "import os, socket\n"
        "os.setgid(65534); os.setuid(65534)\n"
        "s = socket.socket(socket.AF_UNIX)\n"
        f"s.connect({str(sock_path)!r})\n"
        "s.settimeout(10)\n"
        "try:\n"
        '    s.sendall(b\'{"jsonrpc":"2.0","id":1,"method":"status"}\\n\')\n'
        "    data = s.recv(4096)\n"
        "except OSError:\n"
        "    data = b''\n"
        "print('GOT' if data else 'REFUSED')\n"
    )
    try:
        out = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, timeout=30
        )
    finally:
        os.chmod(sock_path, 0o600)
        for path in (daemon.home, sock_path.parent):
            os.chmod(path, 0o700)
    assert out.stdout.strip() == "REFUSED", out.stderr
    with daemon.client() as c:
        assert c.call("status")["pid"] == daemon.proc.pid
