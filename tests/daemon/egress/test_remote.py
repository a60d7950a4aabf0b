"""The OpenAI-compatible chat client: answered through the gateway, audited, key kept out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import pytest

from daemon.egress.audit import AuditLog
from daemon.egress.gateway import Gateway
from daemon.egress.policy import Policy
from daemon.egress.remote import RemoteChat, sse_events
from daemon.errors import EgressDenied, EgressFailed

from .conftest import QuietHandler, Serve
from .helpers import read_entries

API_KEY = "sk-hearth-test-4f9c1e7a0b2d"
MESSAGES = [{"role": "user", "content": "Say hello"}]


class FakeOpenAI(QuietHandler):
    """Checks the bearer key, then answers "Hello there!" whole or as SSE deltas."""

    requests: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeOpenAI.requests.append({"path": self.path, "body": body})
        if self.headers.get("Authorization") != f"Bearer {API_KEY}":
            error = {"error": {"message": "Incorrect API key provided", "type": "invalid_request"}}
            return self.send_body(401, json.dumps(error).encode(), Content_Type="application/json")
        if body.get("stream"):
            return self.stream_answer(body["model"])
        answer = {
            "model": body["model"],
            "choices": [
                {
                    "message": {"role": "assistant", "content": "Hello there!"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6},
        }
        self.send_body(200, json.dumps(answer).encode(), Content_Type="application/json")

    def stream_answer(self, model: str) -> None:
        events = [
            {"model": model, "choices": [{"delta": {"role": "assistant"}, "finish_reason": None}]},
            *(
                {"model": model, "choices": [{"delta": {"content": piece}, "finish_reason": None}]}
                for piece in ("Hello", " there", "!")
            ),
            {"model": model, "choices": [{"delta": {}, "finish_reason": "stop"}]},
        ]
        payload = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events)
        payload = b": keep-alive\n\n" + payload + b"data: [DONE]\n\n"
        self.send_body(200, payload, Content_Type="text/event-stream")


@pytest.fixture
def server(serve: Serve) -> str:
    FakeOpenAI.requests = []
    return serve(FakeOpenAI)


def test_a_chat_is_answered_and_audited_without_the_api_key(
    gateway: Gateway, server: str, log_path: Path, checkpoint_path: Path, audit: AuditLog
) -> None:
    chat = RemoteChat(gateway, server, api_key=API_KEY)
    reply = chat.complete(MESSAGES, model="gpt-test", options={"temperature": 0.2})
    assert (reply.text, reply.finish_reason, reply.model) == ("Hello there!", "stop", "gpt-test")
    assert reply.usage == {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}
    (sent,) = FakeOpenAI.requests
    assert sent["path"] == "/v1/chat/completions"
    assert sent["body"] == {"model": "gpt-test", "messages": MESSAGES, "temperature": 0.2}
    intent, outcome = read_entries(log_path)
    assert (intent["caller"], intent["method"], intent["path"]) == (
        "remote.chat",
        "POST",
        "/v1/chat/completions",
    )
    assert outcome["status"] == 200 and outcome["bytes_down"] > 0
    audit.close()
    for stored in (log_path, checkpoint_path):
        assert API_KEY not in stored.read_text() and "Say hello" not in stored.read_text()
    assert API_KEY not in repr(chat)


def test_a_streamed_chat_hands_each_piece_over_as_it_arrives(gateway: Gateway, server: str) -> None:
    pieces: list[str] = []
    chat = RemoteChat(gateway, server + "/v1/", api_key=API_KEY)  # a base ending in /v1 works too
    reply = chat.complete(MESSAGES, model="gpt-test", on_delta=pieces.append)
    assert pieces == ["Hello", " there", "!"]
    assert (reply.text, reply.finish_reason) == ("Hello there!", "stop")
    assert FakeOpenAI.requests[0]["path"] == "/v1/chat/completions"
    assert FakeOpenAI.requests[0]["body"]["stream"] is True


def test_a_rejected_key_fails_with_the_servers_reason_and_is_audited(
    gateway: Gateway, server: str, log_path: Path
) -> None:
    chat = RemoteChat(gateway, server, api_key="sk-wrong")
    with pytest.raises(
        EgressFailed, match="refused the API key \\(401\\): Incorrect API key"
    ) as failed:
        chat.complete(MESSAGES, model="gpt-test")
    assert failed.value.data["status"] == 401
    assert read_entries(log_path)[-1]["status"] == 401
    assert "sk-wrong" not in log_path.read_text()


def test_offline_refuses_the_chat_before_it_leaves(
    audit: AuditLog, server: str, log_path: Path
) -> None:
    chat = RemoteChat(Gateway(Policy(), audit), server, api_key=API_KEY)
    with pytest.raises(EgressDenied):
        chat.complete(MESSAGES, model="gpt-test")
    assert FakeOpenAI.requests == []
    assert [e["decision"] for e in read_entries(log_path)] == ["deny", "deny"]


def test_server_sent_events_are_split_on_blank_lines_with_comments_skipped() -> None:
    lines = [
        ": ping",
        "",
        "data: one",
        "",
        "data:two",
        "data: lines",
        "",
        "event: x",
        "data: [DONE]",
    ]
    assert list(sse_events(lines)) == ["one", "two\nlines", "[DONE]"]
