"""The socket guard refuses internet sockets opened outside the gateway, before any packet.

The guard is an audit hook, which can never be removed, so the end-to-end checks run in
a child process (guarded_process.py); the decision function is also checked here directly.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import daemon
from daemon.egress.guard import Target, is_local, judge

from .helpers import read_entries

SCRIPT = Path(__file__).with_name("guarded_process.py")
ROOT = Path(daemon.__file__).parent.parent


@pytest.fixture(scope="module")
def child(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """What the guarded child process reported, and its audit log."""
    tmp = tmp_path_factory.mktemp("guard")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp / "egress.jsonl"), str(tmp / "checkpoint.json")],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), read_entries(tmp / "egress.jsonl")


@pytest.mark.parametrize(
    ("attempt", "error"),
    [
        ("urlopen", "URLError"),  # urllib wraps the refusal (an OSError) as it would any
        ("create_connection", "EgressBlocked"),
        ("getaddrinfo", "EgressBlocked"),
        ("sendto", "EgressBlocked"),
    ],
)
def test_internet_sockets_outside_the_gateway_are_refused_at_once(
    child: tuple[dict[str, Any], list[dict[str, Any]]], attempt: str, error: str
) -> None:
    results, _ = child
    assert results[attempt]["error"] == error
    if error == "URLError":
        assert results[attempt]["reason"] == "EgressBlocked"
    assert results[attempt]["seconds"] < 1  # refused, not timed out on an unreachable host


def test_a_refused_connect_leaves_the_socket_unconnected_and_sends_no_syn(
    child: tuple[dict[str, Any], list[dict[str, Any]]],
) -> None:
    outcome = child[0]["nonblocking_connect"]["outcome"]
    assert outcome["connected"] is False
    assert outcome["in_kernel_table"] in (False, None)  # None: no /proc/net/tcp here


def test_unix_sockets_and_listed_loopback_ports_pass_other_loopback_ports_do_not(
    child: tuple[dict[str, Any], list[dict[str, Any]]],
) -> None:
    """A proxy or a DNS resolver on 127.0.0.1 leads out: only ports the guard lists pass."""
    results, _ = child
    assert results["loopback"]["error"] == "EgressBlocked"
    assert results["loopback_listed"]["outcome"] == "PING"
    assert results["unix"]["outcome"] == "unix ok"


def test_each_refusal_is_counted_and_audited_as_blocked_with_where_it_came_from(
    child: tuple[dict[str, Any], list[dict[str, Any]]],
) -> None:
    results, entries = child
    blocked = [e for e in entries if e["phase"] == "blocked"]
    assert results["blocked_count"] == len(blocked) == 6
    assert [(e["host"], e["port"]) for e in blocked][:5] == [
        ("203.0.113.1", 80),
        ("198.51.100.7", 80),
        ("hearth-guard-test.invalid", 443),
        ("192.0.2.53", 53),
        ("203.0.113.9", 443),
    ]
    assert blocked[5]["host"] == "127.0.0.1" and blocked[5]["method"] == "socket.connect"
    assert all(e["decision"] == "block" and e["caller"] == "__main__" for e in blocked)
    assert any("in fetch_testnet" in line for line in blocked[0]["stack"])
    assert blocked[3]["method"] == "socket.sendto" and blocked[4]["method"] == "socket.connect"


def test_the_gateway_gets_through_the_guard_and_its_refusals_touch_no_socket(
    child: tuple[dict[str, Any], list[dict[str, Any]]],
) -> None:
    results, entries = child
    assert results["installed_once"] is True
    assert results["gateway_local"]["outcome"] == "hello"
    assert results["denied_is_egress_denied"] is True
    assert results["socket_events_while_denied"] == []  # decided before any DNS lookup
    assert [e["decision"] for e in entries if e["phase"] == "intent"] == ["allow", "deny"]


@pytest.fixture
def tcp() -> Iterator[socket.socket]:
    with socket.socket() as sock:  # never connected: only its family is read
        yield sock


def test_only_the_host_a_gateway_call_was_allowed_may_be_looked_up_during_it(
    tcp: socket.socket,
) -> None:
    assert judge("socket.getaddrinfo", ("huggingface.co", 443, 0, 0, 0), None) == Target(
        "huggingface.co", 443
    )
    hub = frozenset({"huggingface.co"})
    assert judge("socket.getaddrinfo", ("HuggingFace.co.", 443, 0, 0, 0), hub) is None
    assert judge("socket.getaddrinfo", ("evil.example", 443, 0, 0, 0), hub)
    assert judge("socket.connect", (tcp, ("203.0.113.5", 443)), hub) is None
    assert judge("socket.connect", (tcp, ("203.0.113.5", 443)), None) == Target("203.0.113.5", 443)


@pytest.mark.parametrize(
    ("address", "listed", "refused"),
    [
        (("127.0.0.1", 3128), frozenset(), True),  # an HTTP proxy
        (("127.0.0.53", 53), frozenset(), True),  # systemd-resolved, which forwards out
        (("::1", 1080), frozenset(), True),  # a SOCKS proxy
        (("127.0.0.1", 8080), frozenset({8080}), False),
    ],
)
def test_a_loopback_port_passes_only_when_listed(
    tcp: socket.socket, address: tuple[str, int], listed: frozenset[int], refused: bool
) -> None:
    sock = socket.socket(socket.AF_INET6 if ":" in address[0] else socket.AF_INET)
    with sock:
        target = judge("socket.connect", (sock, address), None, listed)
    assert (target is not None) is refused


@pytest.mark.parametrize(
    ("host", "local"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("localhost", True),
        (None, True),
        ("10.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("localhost.example.com", False),
        ("0x7f.1", False),
    ],
)
def test_what_counts_as_local(host: str | None, local: bool) -> None:
    assert is_local(host) is local
