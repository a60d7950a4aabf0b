"""A proxy or a DNS resolver on loopback is no way out of the daemon.

The daemon is started the way `hearth up` starts it from a shell that sets http_proxy
(and friends) to a relay on 127.0.0.1. Code in the daemon then phones home as a
dependency might: urllib (which honours http_proxy), a direct connect to the relay, and
a DNS query to a resolver on 127.0.0.1:53 (127.0.0.53 forwards upstream the same way).
Nothing reaches the relay or the resolver; every attempt is counted and logged. A proxy
the user sets in Hearth (`hearth net proxy`) is used, by the gateway, and named in the log.
"""

from __future__ import annotations

import json
import shutil
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest

from daemon.errors import EgressFailed, ModelNotFound
from tests.conftest import make_home

from .conftest import QuietHandler
from .daemon_support import env_for, hearth, launch

OUTSIDE = "203.0.113.5"  # TEST-NET-3


class Listener:
    """A TCP relay (an HTTP proxy stand-in) or a UDP resolver on loopback that records
    every connection or datagram that reaches it."""

    def __init__(self, kind: int, host: str = "127.0.0.1", port: int = 0) -> None:
        self.sock = socket.socket(socket.AF_INET, kind)
        self.sock.bind((host, port))
        self.port = self.sock.getsockname()[1]
        self.reached: list[bytes] = []
        if kind == socket.SOCK_STREAM:
            self.sock.listen()
        threading.Thread(target=self._serve, args=(kind,), daemon=True).start()

    def _serve(self, kind: int) -> None:
        while True:
            try:
                if kind == socket.SOCK_DGRAM:
                    self.reached.append(self.sock.recv(4096))
                    continue
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    self.reached.append(conn.recv(4096))
                except OSError:
                    self.reached.append(b"")


def _resolver() -> Listener:
    """A UDP listener on port 53 of a loopback address (the tests run as root)."""
    for host in ("127.0.0.1", "127.0.0.2", "127.0.0.54"):
        try:
            return Listener(socket.SOCK_DGRAM, host, 53)
        except OSError:
            continue
    pytest.fail("no loopback address has port 53 free for the resolver stand-in")


@dataclass
class Scenario:
    attempts: dict[str, dict[str, Any]]
    status: dict[str, Any]
    entries: list[dict[str, Any]]
    relay: list[bytes]
    resolver: list[bytes]
    resolver_host: str
    relay_port: int
    daemon_log: str


@pytest.fixture(scope="module")
def scenario() -> Iterator[Scenario]:
    relay, resolver = Listener(socket.SOCK_STREAM), _resolver()
    proxy = f"http://127.0.0.1:{relay.port}"
    home = make_home()
    shell = {"http_proxy": proxy, "HTTPS_PROXY": proxy, "ALL_PROXY": proxy, "no_proxy": ""}
    daemon = launch(home, env=env_for(home, **shell))
    try:

        def phone_home(how: str, host: str, port: int) -> dict[str, Any]:
            return dict(daemon.call("debug.phone_home", {"how": how, "host": host, "port": port}))

        resolver_host = resolver.sock.getsockname()[0]
        attempts = {
            "urlopen": phone_home("urlopen", OUTSIDE, 80),
            "relay": phone_home("connect", "127.0.0.1", relay.port),
            "dns": phone_home("dns", resolver_host, 53),
        }
        scenario = Scenario(
            attempts, daemon.call("net.status"), daemon.call("audit.list")["entries"],
            relay.reached, resolver.reached, resolver_host, relay.port, "",
        )  # fmt: skip
        daemon.stop()
        scenario.daemon_log = (home / "logs" / "daemon.log").read_text()
        yield scenario
    finally:
        daemon.stop()
        relay.sock.close()
        resolver.sock.close()
        shutil.rmtree(home, ignore_errors=True)


def test_nothing_reaches_a_proxy_or_resolver_on_loopback(scenario: Scenario) -> None:
    assert scenario.relay == [] and scenario.resolver == []
    for name, result in scenario.attempts.items():
        assert (result["connected"], result["blocked"]) == (False, True), name


def test_each_attempt_is_counted_and_logged_with_where_it_went(scenario: Scenario) -> None:
    assert scenario.status["blocked"] == 3
    blocked = [(e["host"], e["port"]) for e in scenario.entries if e["phase"] == "blocked"]
    assert blocked == [
        (OUTSIDE, 80),  # urllib no longer knows of the proxy: it tried to go direct
        ("127.0.0.1", scenario.relay_port),
        (scenario.resolver_host, 53),
    ]


def test_the_daemon_says_it_ignores_the_shells_proxy_without_writing_its_value(
    scenario: Scenario,
) -> None:
    assert "ignoring the proxy settings in the environment: ALL_PROXY, HTTPS_PROXY" in (
        scenario.daemon_log
    )
    assert str(scenario.relay_port) not in scenario.daemon_log
    assert scenario.status["proxy"] is None


class ForwardProxy(QuietHandler):
    """Answers for any absolute URL it is asked for, and remembers it."""

    asked: ClassVar[list[str]] = []

    def do_HEAD(self) -> None:
        self.asked.append(f"{self.command} {self.path}")
        self.send_body(404, b"not here")


def test_a_proxy_set_in_hearth_is_used_by_the_gateway_and_named_in_the_log(
    serve: Any,
) -> None:
    ForwardProxy.asked = []
    proxy = serve(ForwardProxy)
    home = make_home()
    daemon = launch(home)
    try:
        out = hearth(home, "net", "proxy", proxy)
        assert out.returncode == 0 and f"proxy    {proxy}" in out.stdout, out.stderr
        daemon.call("net.set_mode", {"mode": "allow-listed"})
        daemon.call("net.allow", {"host": "hub.example", "caller": "models.pull"})
        pull = {"repo": "a/b", "file": "x.gguf", "endpoint": "http://hub.example"}
        with pytest.raises(ModelNotFound):  # the proxy's answer: 404
            daemon.call("models.pull", pull)
        assert ForwardProxy.asked == ["HEAD http://hub.example/a/b/resolve/main/x.gguf"]
        entries = daemon.call("audit.list")["entries"]
        intent = next(e for e in entries if e["phase"] == "intent")
        assert intent["proxy"] == proxy.removeprefix("http://")
        changes = [e["change"] for e in entries if e["phase"] == "policy"]
        assert changes == [f"proxy {proxy}", "mode offline -> allow-listed",
                           "allow hub.example for models.pull"]  # fmt: skip
        status = json.loads(hearth(home, "net", "status", "--json").stdout)
        assert status["proxy"] == proxy
        assert daemon.call("net.proxy", {"url": None})["proxy"] is None
        with pytest.raises(EgressFailed):  # direct again: hub.example is no host here
            daemon.call("models.pull", pull)
        assert len(ForwardProxy.asked) == 1
    finally:
        daemon.stop()
        shutil.rmtree(home, ignore_errors=True)
