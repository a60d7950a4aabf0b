"""The running daemon reaches nothing beyond loopback, and what tries is blocked and logged.

One daemon runs the whole scenario under ``strace -f`` (so its model runners are traced
too): idle, chats and a rewrite; then code inside it tries a loopback port, urlopen and a
raw connect to TEST-NET addresses; then the gateway, allowed to, connects to 127.0.0.1.
Two independent witnesses are checked: the guard's own counter and audit log, and every
connect/sendto/sendmsg the kernel was asked for.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from daemon.client import Client
from daemon.errors import EgressFailed, MethodNotFound
from tests.conftest import make_home

from .daemon_support import hearth, launch

OUTSIDE_URL_HOST = "203.0.113.5"  # TEST-NET-3
OUTSIDE_CONNECT = ("198.51.100.7", 443)  # TEST-NET-2
# "store": False: a test home has no vault (no keychain, no passphrase); the chat is the same.
CHAT = {
    "messages": [{"role": "user", "content": "Say hi"}],
    "options": {"max_tokens": 8},
    "store": False,
}
SYSCALL = re.compile(r"^(\d+)\s+(connect|sendto|sendmsg|unshare)\((.*)$")


@dataclass
class Scenario:
    quiet_status: dict[str, Any]  # net.status after idling, chats and rewrites
    quiet_entries: list[dict[str, Any]]
    attempts: dict[str, dict[str, Any]]
    status: dict[str, Any]  # net.status after the attempts
    listing: str  # `hearth audit list`
    entries: list[dict[str, Any]]  # `hearth audit list --json`
    daemon_pid: int
    syscalls: list[tuple[int, str, str]]  # (pid, name, arguments) from strace


def _trace(path: Path) -> list[tuple[int, str, str]]:
    found = []
    for line in path.read_text().splitlines():
        match = SYSCALL.match(line)
        if match and "resumed>" not in line:
            found.append((int(match.group(1)), match.group(2), match.group(3)))
    return found


def _is_local(arguments: str) -> bool:
    """An address that stays on this machine (or none: a send on a connected socket)."""
    family = re.search(r"sa_family=(\w+)", arguments)
    if family is None:
        return True
    if family.group(1) == "AF_UNIX":
        return True
    if family.group(1) == "AF_INET":
        return 'inet_addr("127.' in arguments
    if family.group(1) == "AF_INET6":
        return 'inet_pton(AF_INET6, "::1"' in arguments
    return False


@pytest.fixture(scope="module")
def scenario() -> Iterator[Scenario]:
    if shutil.which("strace") is None:
        pytest.fail("strace is missing: run `bash tests/system-deps.sh` first")
    home = make_home()
    trace = home / "strace.txt"
    prefix = ["strace", "-f", "--seccomp-bpf", "-qq", "-o", str(trace),
              "-e", "trace=connect,sendto,sendmsg,unshare"]  # fmt: skip
    daemon = launch(home, prefix)
    try:
        with daemon.client() as c:
            time.sleep(1.0)  # idle
            c.call("chat", CHAT)
            c.call("chat", {**CHAT, "messages": [{"role": "user", "content": "And again"}]})
            rewrite = {"text": "i has a cat", "preset": "proofread", "options": {"max_tokens": 12}}
            c.call("rewrite", rewrite)
            time.sleep(1.0)  # idle with a model loaded
            quiet_status = c.call("net.status")
            quiet_entries = c.call("audit.list")["entries"]

            def phone_home(how: str, host: str, port: int = 80) -> dict[str, Any]:
                params = {"how": how, "host": host, "port": port}
                return dict(c.call("debug.phone_home", params))

            attempts = {
                # A loopback port leads out too when a proxy or resolver listens there.
                "loopback": phone_home("connect", "127.0.0.1", 9),
                "urlopen": phone_home("urlopen", OUTSIDE_URL_HOST),
                "connect": phone_home("connect", *OUTSIDE_CONNECT),
            }
            status = c.call("net.status")
            # A connect the gateway is allowed to make: proof that the trace sees them.
            c.call("net.set_mode", {"mode": "allow-listed"})
            c.call("net.allow", {"host": "127.0.0.1", "caller": "models.pull"})
            with pytest.raises(EgressFailed):
                c.call("models.pull", {"repo": "a/b", "file": "x.gguf",
                                       "endpoint": "http://127.0.0.1:9"})  # fmt: skip
        listing = hearth(home, "audit", "list")
        as_json = hearth(home, "audit", "list", "--json")
        assert listing.returncode == 0 and as_json.returncode == 0, listing.stderr
        daemon.stop()
        yield Scenario(
            quiet_status, quiet_entries, attempts, status, listing.stdout,
            json.loads(as_json.stdout), daemon.pid, _trace(trace),
        )  # fmt: skip
    finally:
        daemon.stop()
        shutil.rmtree(home, ignore_errors=True)


def test_idling_chatting_and_rewriting_trip_no_guard_and_log_no_call(scenario: Scenario) -> None:
    assert scenario.quiet_status["blocked"] == 0
    assert scenario.quiet_status["blocked_unrecorded"] == 0
    assert scenario.quiet_entries == []  # not even a denied call: nothing tried to go out


def test_every_connect_of_the_daemon_and_its_runners_stays_on_this_machine(
    scenario: Scenario,
) -> None:
    addressed = [s for s in scenario.syscalls if s[1] != "unshare" and "sa_family=" in s[2]]
    outside = [s for s in addressed if not _is_local(s[2])]
    assert outside == []
    # The trace is a real witness: it saw the gateway's allowed connect, and the runners
    # (other processes, each taking a fresh network namespace) were traced as well.
    probe = 'sin_port=htons(9), sin_addr=inet_addr("127.0.0.1")'
    assert any(probe in args for _, name, args in addressed if name == "connect")
    runners = {pid for pid, name, args in scenario.syscalls
               if name == "unshare" and "CLONE_NEWNET" in args}  # fmt: skip
    assert runners and scenario.daemon_pid not in runners


@pytest.mark.parametrize("attempt", ["urlopen", "connect"])
def test_code_in_the_daemon_reaching_an_outside_address_is_blocked(
    scenario: Scenario, attempt: str
) -> None:
    result = scenario.attempts[attempt]
    assert result["blocked"] and not result["connected"]


def test_code_in_the_daemon_reaching_a_loopback_port_is_blocked_too(scenario: Scenario) -> None:
    assert scenario.attempts["loopback"] == {
        "connected": False,
        "error": "EgressBlocked",
        "blocked": True,
    }


def test_blocked_attempts_are_counted_and_listed_with_where_they_came_from(
    scenario: Scenario,
) -> None:
    assert scenario.status["blocked"] == 3
    blocked = [e for e in scenario.entries if e["phase"] == "blocked"]
    assert [(e["host"], e["decision"]) for e in blocked] == [
        ("127.0.0.1", "block"),
        (OUTSIDE_URL_HOST, "block"),
        (OUTSIDE_CONNECT[0], "block"),
    ]
    assert (blocked[0]["port"], blocked[2]["port"]) == (9, OUTSIDE_CONNECT[1])
    for entry in blocked:
        assert entry["caller"] == "daemon.methods.egress"
        assert any(frame.startswith("daemon.methods.egress:") for frame in entry["stack"])
    for host in (OUTSIDE_URL_HOST, OUTSIDE_CONNECT[0]):
        line = next(line for line in scenario.listing.splitlines() if host in line)
        assert "blocked" in line and "BLOCKED" in line
    assert "from daemon.methods.egress:" in scenario.listing


def test_a_blocked_attempt_never_reaches_the_kernel(scenario: Scenario) -> None:
    for host in (OUTSIDE_URL_HOST, OUTSIDE_CONNECT[0]):
        assert not [s for s in scenario.syscalls if host in s[2]]


def test_the_test_hook_is_not_a_method_of_a_normal_daemon(client: Client) -> None:
    with pytest.raises(MethodNotFound):
        client.call("debug.phone_home", {"how": "connect", "host": "127.0.0.1"})
