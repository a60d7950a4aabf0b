"""The gateway: every call judged by the policy, audited before and after, bytes counted."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import ClassVar

import httpx
import pytest

from daemon.egress.audit import AuditLog
from daemon.egress.gateway import Gateway
from daemon.egress.policy import Mode, Policy
from daemon.errors import EgressDenied, EgressFailed, InvalidParams

from .conftest import QuietHandler, Serve
from .helpers import calls, read_entries


class Recorder(QuietHandler):
    """Answers every request with a fixed body and remembers what it was sent."""

    seen: ClassVar[list[dict[str, str]]] = []
    body = b"x" * 3000

    def do_GET(self) -> None:
        self.seen.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
        self.send_body(200, self.body, Set_Cookie="session=tracking; Path=/")

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.do_GET()


@pytest.fixture
def recorder(serve: Serve) -> str:
    Recorder.seen = []
    return serve(Recorder)


def test_an_allowed_call_is_answered_and_audited_as_intent_then_outcome(
    gateway: Gateway, recorder: str, log_path: Path
) -> None:
    reply = gateway.request(
        "remote.chat",
        "test call",
        "POST",
        f"{recorder}/v1/items?api_key=QUERYSECRET",
        headers={"X-Api-Key": "HEADERSECRET"},
        content=b"BODYSECRET" * 10,
    )
    assert (reply.status, reply.content) == (200, Recorder.body)
    intent, outcome = read_entries(log_path)
    assert intent["phase"] == "intent" and intent["decision"] == "allow"
    assert intent["rule"] == "127.0.0.1 for *" and intent["purpose"] == "test call"
    assert (intent["method"], intent["scheme"], intent["host"], intent["path"]) == (
        "POST",
        "http",
        "127.0.0.1",
        "/v1/items",
    )
    assert outcome["phase"] == "outcome" and outcome["intent"] == intent["seq"]
    assert (outcome["status"], outcome["bytes_up"], outcome["bytes_down"]) == (200, 100, 3000)
    assert outcome["duration_ms"] >= 0 and outcome["error"] is None
    logged = log_path.read_text()
    for secret in ("QUERYSECRET", "HEADERSECRET", "BODYSECRET", "api_key"):
        assert secret not in logged


def test_a_denied_call_never_reaches_the_server_and_is_audited_with_its_refusal(
    audit: AuditLog, recorder: str, log_path: Path
) -> None:
    gateway = Gateway(Policy(), audit)
    with pytest.raises(EgressDenied, match="Hearth is offline"):
        gateway.request("models.pull", "test call", "GET", f"{recorder}/file")
    assert Recorder.seen == []
    assert calls(log_path) == [
        ("intent", "GET", "/file", "deny"),
        ("outcome", "GET", "/file", None),
    ]
    assert read_entries(log_path)[1]["error"] == "EgressDenied"


class Redirect(QuietHandler):
    target = ""

    def do_GET(self) -> None:
        self.send_body(302, b"", Location=f"{self.target}/landed")


def test_each_redirect_hop_is_judged_so_a_hop_to_an_unallowed_host_is_refused(
    gateway: Gateway, serve: Serve, recorder: str, log_path: Path
) -> None:
    Redirect.target = recorder.replace("127.0.0.1", "localhost")  # not in the policy
    start = serve(Redirect)
    with pytest.raises(EgressDenied, match="no rule allows it"):
        gateway.request("models.pull", "test call", "GET", f"{start}/start")
    assert Recorder.seen == []
    assert calls(log_path) == [
        ("intent", "GET", "/start", "allow"),
        ("outcome", "GET", "/start", 302),
        ("intent", "GET", "/landed", "deny"),
        ("outcome", "GET", "/landed", None),
    ]


def test_a_redirect_to_another_origin_drops_credentials_but_keeps_the_range(
    audit: AuditLog, serve: Serve, recorder: str
) -> None:
    Redirect.target = recorder.replace("127.0.0.1", "localhost")
    start = serve(Redirect)
    policy = Policy(Mode.ALLOW_LISTED).allow("127.0.0.1", "models.pull").allow("localhost", "*")
    gateway = Gateway(policy, audit)
    headers = {"Authorization": "Bearer hf_secret", "Range": "bytes=10-"}
    reply = gateway.request("models.pull", "test call", "GET", f"{start}/start", headers=headers)
    assert reply.status == 200 and reply.url.endswith("/landed")
    (landed,) = Recorder.seen
    assert "authorization" not in landed and landed["range"] == "bytes=10-"


def test_cookies_from_one_call_are_never_sent_on_the_next(gateway: Gateway, recorder: str) -> None:
    gateway.request("remote.chat", "first", "GET", f"{recorder}/a")
    gateway.request("remote.chat", "second", "GET", f"{recorder}/b")
    assert [seen.get("cookie") for seen in Recorder.seen] == [None, None]


def test_a_host_that_cannot_be_reached_fails_with_egress_failed_and_is_audited(
    gateway: Gateway, log_path: Path
) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with pytest.raises(EgressFailed, match=r"could not reach 127\.0\.0\.1: ConnectError"):
        gateway.request("remote.chat", "test call", "GET", f"http://127.0.0.1:{port}/")
    outcome = read_entries(log_path)[-1]
    assert (outcome["status"], outcome["error"], outcome["bytes_down"]) == (None, "ConnectError", 0)


def test_a_stream_is_audited_when_its_block_ends_with_the_bytes_read_and_any_error(
    gateway: Gateway, recorder: str, log_path: Path
) -> None:
    with gateway.stream("models.pull", "test call", "GET", f"{recorder}/big") as stream:
        received = sum(len(chunk) for chunk in stream.iter_bytes(1000))
    assert received == stream.bytes_down == 3000
    with (
        pytest.raises(KeyboardInterrupt),
        gateway.stream("models.pull", "test call", "GET", f"{recorder}/big"),
    ):
        raise KeyboardInterrupt
    first, second = (e for e in read_entries(log_path) if e["phase"] == "outcome")
    assert (first["bytes_down"], first["error"]) == (3000, None)
    assert second["error"] == "KeyboardInterrupt"


def test_an_answer_over_the_size_limit_is_refused(gateway: Gateway, recorder: str) -> None:
    with pytest.raises(EgressFailed, match="over 1000 bytes"):
        gateway.request("remote.chat", "test call", "GET", f"{recorder}/", max_body=1000)


@pytest.mark.parametrize(
    "url", ["ftp://127.0.0.1/file", "file:///etc/passwd", "http://user:pw@127.0.0.1/", "not a url"]
)
def test_urls_that_are_not_plain_http_are_refused_before_anything_is_logged(
    gateway: Gateway, audit: AuditLog, url: str
) -> None:
    with pytest.raises(InvalidParams):
        gateway.request("remote.chat", "test call", "GET", url)
    assert audit.count == 0


class Swallow(QuietHandler):
    """Reads the whole request body, then never answers (a timeout after the upload)."""

    received: ClassVar[list[int]] = []

    def do_POST(self) -> None:
        self.received.append(len(self.rfile.read(int(self.headers["Content-Length"]))))
        self.rfile.read(1)  # wait for the client to give up


def test_a_body_sent_before_a_timeout_is_counted_as_sent(
    audit: AuditLog, local_policy: Policy, serve: Serve, log_path: Path
) -> None:
    Swallow.received = []
    gateway = Gateway(local_policy, audit, timeout=httpx.Timeout(1.0))
    body = b"u" * 200_000  # several chunks: each is counted once written
    try:
        with pytest.raises(EgressFailed, match="ReadTimeout"):
            gateway.request(
                "remote.chat", "test call", "POST", f"{serve(Swallow)}/v1", content=body
            )
    finally:
        gateway.close()
    assert Swallow.received == [len(body)]
    outcome = read_entries(log_path)[-1]
    assert (outcome["status"], outcome["error"]) == (None, "ReadTimeout")
    assert outcome["bytes_up"] == len(body)


def test_a_call_that_never_connected_sent_nothing(gateway: Gateway, log_path: Path) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with pytest.raises(EgressFailed):
        gateway.request("remote.chat", "t", "POST", f"http://127.0.0.1:{port}/", content=b"x" * 9)
    intent, outcome = read_entries(log_path)
    assert (intent["bytes_up"], outcome["bytes_up"]) == (9, 0)  # planned, and actually sent


class BadRedirect(QuietHandler):
    location = ""

    def do_GET(self) -> None:
        self.send_body(302, b"", Location=self.location)


@pytest.mark.parametrize(
    ("location", "host", "path"),
    [
        ("ftp://127.0.0.1/pub/file?token=T0P", "127.0.0.1", "/pub/file"),
        ("http://user:pw@127.0.0.1/landed", "127.0.0.1", "/landed"),
        ("file:///etc/passwd", None, "/etc/passwd"),
    ],
)
def test_a_redirect_the_gateway_will_not_follow_is_an_audited_refusal(
    gateway: Gateway, serve: Serve, log_path: Path, location: str, host: str | None, path: str
) -> None:
    BadRedirect.location = location
    start = serve(BadRedirect)
    with pytest.raises(EgressDenied, match="redirected to a place the gateway does not follow"):
        gateway.request("models.pull", "test call", "GET", f"{start}/start")
    *_, intent, outcome = read_entries(log_path)
    assert calls(log_path)[:2] == [
        ("intent", "GET", "/start", "allow"),
        ("outcome", "GET", "/start", 302),
    ]
    assert (intent["phase"], intent["decision"], intent["rule"]) == (
        "intent",
        "deny",
        "invalid-redirect",
    )
    assert (intent["host"], intent["path"]) == (host, path)
    assert (outcome["phase"], outcome["intent"], outcome["error"]) == (
        "outcome",
        intent["seq"],
        "EgressDenied",
    )
    assert "T0P" not in log_path.read_text() and "pw@" not in log_path.read_text()


class Proxy(QuietHandler):
    """A forward proxy that answers itself: it records the absolute URLs it was asked for."""

    asked: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.asked.append(self.path)
        self.send_body(200, b"via proxy")


def test_the_proxy_set_in_hearth_carries_the_call_and_is_named_in_the_log(
    audit: AuditLog, serve: Serve, log_path: Path
) -> None:
    Proxy.asked = []
    proxy = serve(Proxy)
    policy = Policy(Mode.ALLOW_LISTED).allow("198.51.100.7", "models.pull")
    gateway = Gateway(policy, audit, proxy=proxy)
    try:
        reply = gateway.request("models.pull", "t", "GET", "http://198.51.100.7/file?q=1")
    finally:
        gateway.close()
    assert (reply.status, reply.content) == (200, b"via proxy")
    assert Proxy.asked == ["http://198.51.100.7/file?q=1"]
    intent = read_entries(log_path)[0]
    assert (intent["host"], intent["proxy"]) == ("198.51.100.7", proxy.removeprefix("http://"))
