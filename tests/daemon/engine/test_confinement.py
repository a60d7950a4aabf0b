"""Code inside a real model runner reaches nothing: not the daemon's socket, not the D-Bus
session bus, not a loopback relay — from Python, from libc or from a subprocess. Where
the host refuses the runner's confinement, the runner refuses to start, unless the user
allowed it, and the status says which it is.

Each scenario runs the real daemon, which starts the real llama.cpp runner with the real
default model. A ``sitecustomize.py`` on the daemon's PYTHONPATH (attack.py) makes the
runner attack once it has confined itself and starts loading its engine, the moment a
malicious model file would take over. Hosts that refuse namespaces or seccomp filters
are made with deny_syscalls.py: the kernel itself answers EPERM.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from daemon.errors import EngineUnavailable
from tests.conftest import make_home
from tests.daemon.egress.conftest import QuietHandler
from tests.daemon.egress.daemon_support import REPO_ROOT, env_for, hearth, launch

from .attack import dbus_socket_path, write_attack

CHAT = {"messages": [{"role": "user", "content": "Say hi"}], "options": {"max_tokens": 4},
        "store": False}  # fmt: skip
DENY = [sys.executable, str(Path(__file__).with_name("deny_syscalls.py"))]
ATTEMPTS = ("python_takeover", "libc_takeover", "libc_dbus", "libc_tcp", "child_tcp",
            "child_unix")  # fmt: skip


class Relay:
    """A TCP listener on 127.0.0.1 standing for the outside: it records what reaches it."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.received: list[bytes] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                try:
                    self.received.append(conn.recv(1000))
                except OSError:
                    self.received.append(b"")


class Remote(QuietHandler):
    """An OpenAI-compatible server on 127.0.0.1: where a hijacked chat would be sent."""

    seen: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        self.seen.append(self.rfile.read(int(self.headers["Content-Length"])).decode())
        self.send_body(200, b'{"choices": [{"message": {"content": "ok"}}]}')


@dataclass
class Outcome:
    attacks: dict[str, Any] | None  # None: the attack never ran (no model was loaded)
    relay: list[bytes]
    remote: list[str]
    chat: dict[str, Any] | None
    refused: EngineUnavailable | None
    status: dict[str, Any]
    net: dict[str, Any]
    entries: list[dict[str, Any]]
    status_text: str
    daemon_log: str
    limits: dict[int, str] = field(default_factory=dict)  # /proc/PID/limits, daemon and runner
    runner_env: dict[str, str] = field(default_factory=dict)  # /proc/PID/environ


def _scenario(deny: list[str], config: str = "") -> Iterator[Outcome]:
    home = make_home(config)
    relay = Relay()
    http = ThreadingHTTPServer(("127.0.0.1", 0), Remote)
    threading.Thread(target=http.serve_forever, args=(0.05,), daemon=True).start()
    Remote.seen = []
    results = write_attack(
        home / "attack",
        {
            "hearth_sock": str(home / "run" / "hearth.sock"),
            "dbus_sock": dbus_socket_path(os.environ["DBUS_SESSION_BUS_ADDRESS"]),
            "relay_port": relay.port,
            "remote_url": f"http://127.0.0.1:{http.server_address[1]}/v1",
        },
    )
    env = env_for(home, PYTHONPATH=f"{home / 'attack'}{os.pathsep}{REPO_ROOT}")
    prefix = [*DENY, *deny, "--"] if deny else []
    daemon = launch(home, prefix, env)
    try:
        chat, refused = None, None
        try:
            chat = daemon.call("chat", CHAT)
        except EngineUnavailable as exc:
            refused = exc
        status = daemon.call("status")
        runners = [r["pid"] for r in status["runners"]]
        limits = {pid: Path(f"/proc/{pid}/limits").read_text() for pid in [daemon.pid, *runners]}
        environ = Path(f"/proc/{runners[0]}/environ").read_bytes() if runners else b""
        runner_env = dict(v.split("=", 1) for v in environ.decode().split("\0") if "=" in v)
        outcome = Outcome(
            attacks=json.loads(results.read_text()) if results.exists() else None,
            relay=list(relay.received),
            remote=list(Remote.seen),
            chat=chat,
            refused=refused,
            status=status,
            net=daemon.call("net.status"),
            entries=daemon.call("audit.list")["entries"],
            status_text=hearth(home, "status").stdout,
            daemon_log="",
            limits=limits,
            runner_env=runner_env,
        )
        daemon.stop()
        outcome.daemon_log = (home / "logs" / "daemon.log").read_text()
        yield outcome
    finally:
        daemon.stop()
        http.shutdown()
        http.server_close()
        relay.server.close()
        shutil.rmtree(home, ignore_errors=True)


def _nothing_got_out(outcome: Outcome) -> None:
    assert outcome.relay == [] and outcome.remote == []
    assert (outcome.net["mode"], outcome.net["rules"], outcome.net["remote"]) == (
        "offline",
        [],
        None,
    )
    assert not [e for e in outcome.entries if e["phase"] == "policy"]


@pytest.fixture(scope="module")
def confined() -> Iterator[Outcome]:
    yield from _scenario([])


@pytest.fixture(scope="module")
def no_namespace() -> Iterator[Outcome]:
    yield from _scenario(["unshare"])


@pytest.fixture(scope="module")
def no_confinement() -> Iterator[Outcome]:
    yield from _scenario(["unshare", "prctl-seccomp"])


@pytest.fixture(scope="module")
def allowed_unconfined() -> Iterator[Outcome]:
    yield from _scenario(["unshare", "prctl-seccomp"], "allow_unconfined_runners = true\n")


def test_code_in_a_runner_reaches_neither_the_daemon_nor_dbus_nor_a_loopback_relay(
    confined: Outcome,
) -> None:
    assert confined.attacks is not None and set(confined.attacks) == set(ATTEMPTS)
    for name, attempt in confined.attacks.items():
        assert attempt["ok"] is False, (name, attempt)
        assert "Operation not permitted" in attempt["error"] or "EgressBlocked" in attempt["error"]
    assert confined.attacks["python_takeover"]["error"].startswith("EgressBlocked")
    _nothing_got_out(confined)
    assert confined.chat is not None and confined.chat["finish_reason"] in ("stop", "length")
    (runner,) = confined.status["isolation"]["runners"]
    assert (runner["network"], runner["netns"], runner["seccomp"]) == (
        "seccomp+namespace",
        True,
        True,
    )


def test_a_runner_gets_a_minimal_environment_that_points_nowhere(confined: Outcome) -> None:
    env = confined.runner_env
    assert env["PYTHONPATH"].endswith(str(REPO_ROOT)) and "PATH" in env
    for name in ("DBUS_SESSION_BUS_ADDRESS", "HEARTH_HOME", "HEARTH_TEST_HOOKS",
                 "PYTHON_KEYRING_BACKEND", "XDG_RUNTIME_DIR", "SSH_AUTH_SOCK"):  # fmt: skip
        assert name not in env
    assert os.environ["DBUS_SESSION_BUS_ADDRESS"] not in "\n".join(env.values())


def test_a_runners_refused_socket_is_in_the_daemons_audit_log(confined: Outcome) -> None:
    blocked = [e for e in confined.entries if e["phase"] == "blocked"]
    assert blocked and all(e["caller"].startswith("runner:llamacpp:") for e in blocked)
    assert blocked[0]["host"] == "a new AF_UNIX socket"
    assert any("_attack" in frame or "python_takeover" in frame for frame in blocked[0]["stack"])
    assert confined.net["isolation"]["blocked"] == len(blocked)
    assert confined.status["network"]["blocked"] == 0  # nothing in the daemon itself


def test_the_daemon_and_its_runners_make_no_core_dumps(confined: Outcome) -> None:
    assert confined.status["isolation"]["daemon"] == {"core_limit": 0, "dumpable": False}
    assert confined.status["isolation"]["runners"][0]["core_dumps_off"] is True
    assert len(confined.limits) == 2
    for limits in confined.limits.values():
        assert [line.split()[4:6] for line in limits.splitlines()
                if line.startswith("Max core file size")] == [["0", "0"]]  # fmt: skip


def test_without_a_namespace_the_seccomp_filter_still_keeps_a_runner_off_every_network(
    no_namespace: Outcome,
) -> None:
    """Ubuntu 24.04's AppArmor, or a container: unshare fails. Before, the runner then ran
    with the full network, silently."""
    assert no_namespace.attacks is not None
    assert [n for n, a in no_namespace.attacks.items() if a["ok"]] == []
    _nothing_got_out(no_namespace)
    (runner,) = no_namespace.status["isolation"]["runners"]
    assert (runner["network"], runner["netns"], runner["confined"]) == ("seccomp", False, True)
    assert no_namespace.chat is not None


def test_a_runner_that_cannot_be_confined_refuses_to_start_and_says_how_to_allow_it(
    no_confinement: Outcome,
) -> None:
    assert no_confinement.refused is not None and no_confinement.chat is None
    assert no_confinement.refused.data["reason"] == "unconfined"
    assert "allow_unconfined_runners = true" in no_confinement.refused.message
    assert no_confinement.attacks is None  # no model code ever ran
    _nothing_got_out(no_confinement)
    isolation = no_confinement.net["isolation"]
    assert (isolation["required"], isolation["refused"], isolation["runners"]) == (True, 1, [])
    assert "1 refused: this model runner could not be confined" in no_confinement.status_text


def test_a_user_may_allow_unconfined_runners_and_is_told_they_run_so(
    allowed_unconfined: Outcome,
) -> None:
    outcome = allowed_unconfined
    assert outcome.chat is not None
    (runner,) = outcome.status["isolation"]["runners"]
    assert (runner["network"], runner["confined"]) == ("unconfined", False)
    assert outcome.status["isolation"]["required"] is False
    assert "unconfined runners are ALLOWED" in outcome.status_text
    assert "runs WITHOUT network confinement" in outcome.daemon_log
    # Even so, the daemon does not take requests from its runner (or the runner's child):
    assert outcome.attacks is not None
    takeover = outcome.attacks["libc_takeover"]  # it connected; the daemon hung up on it
    assert takeover["ok"] is False
    assert takeover["error"].split(":")[0] in ("BrokenPipeError", "ConnectionResetError",
                                               "ConnectionError")  # fmt: skip
    assert outcome.attacks["python_takeover"]["error"].startswith("EgressBlocked")
    assert "is (or was started by) the model runner" in outcome.daemon_log
    assert (outcome.net["mode"], outcome.net["remote"], outcome.remote) == ("offline", None, [])
