"""Replies and cancels at the server's edges, on the real daemon (issue 20, items 4-7).

Every request gets exactly one reply, whatever its text; a bad cancel is refused without
touching the connection; closing a connection cancels everything it asked for.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import Daemon
from tests.daemon.support import Lines, line, log_text, raw, until

PROMPT = [{"role": "user", "content": "Write a very long story about a dragon."}]


def chat(max_tokens: int) -> dict[str, Any]:
    return {
        "messages": PROMPT,
        "store": False,
        "options": {"temperature": 0, "max_tokens": max_tokens},
    }


# 4. A lone surrogate (valid JSON) in what the reply echoes.


def test_a_lone_surrogate_in_a_request_still_gets_its_reply(daemon: Daemon) -> None:
    with raw(daemon) as sock:
        lines = Lines(sock)
        sock.sendall(b'{"jsonrpc": "2.0", "id": 1, "method": "x\\ud800"}\n')
        reply = lines.reply_to(1)
        assert reply["error"]["data"]["kind"] == "method_not_found"
        assert "x\ud800" in reply["error"]["message"]
        sock.sendall(b'{"jsonrpc": "2.0", "id": "\\udc00", "method": "status"}\n')
        assert lines.reply_to("\udc00")["result"]["pid"] == daemon.proc.pid
    assert "UnicodeEncodeError" not in log_text(daemon)


# 5. A cancel whose target id is not an id.


@pytest.mark.parametrize("target", [[1], {"id": 1}, True, 1.5])
def test_a_cancel_whose_target_is_not_an_id_is_refused_and_the_connection_serves_on(
    daemon: Daemon, target: Any
) -> None:
    with raw(daemon) as sock:
        lines = Lines(sock)
        sock.sendall(line(1, "chat", chat(8)) + line(2, "cancel", {"id": target}))
        refused = lines.reply_to(2)
        assert refused["error"]["data"]["kind"] == "invalid_params"
        assert refused["error"]["data"]["field"] == "id"
        answered = lines.reply_to(1)  # the chat on that connection goes on, uncancelled
        assert answered["result"]["finish_reason"] != "cancelled"


# 6. Requests without an id, when their client leaves.


@pytest.mark.parametrize("with_null_id", [False, True])
def test_a_request_without_an_id_is_cancelled_when_its_client_disconnects(
    daemon: Daemon, with_null_id: bool
) -> None:
    def cancels() -> list[int]:
        found = [ln for ln in log_text(daemon).splitlines() if "request cancelled after" in ln]
        return [int(ln.split("after ")[1].split()[0]) for ln in found]

    before = len(cancels())
    with daemon.client() as watcher:
        with raw(daemon) as sock:
            sock.sendall(line(None if with_null_id else ..., "chat", chat(2000)))
            until(lambda: any(r["busy"] for r in watcher.call("status")["runners"]), "the chat")
        until(lambda: not any(r["busy"] for r in watcher.call("status")["runners"]), "idle", 600)
    after = cancels()
    assert len(after) > before, "the abandoned request ran to its end"
    assert after[-1] < 2000


# 7. A cancel reusing the id of a request in flight.


def test_a_cancel_reusing_an_id_in_flight_is_refused_and_that_request_answers_once(
    daemon: Daemon,
) -> None:
    with raw(daemon) as sock:
        lines = Lines(sock)
        sock.sendall(line(5, "chat", chat(8)) + line(5, "cancel", {"id": 5}))
        lines.until(lambda m: m.get("id") == 5 and "text" in m.get("result", {}))
        sock.sendall(line(6, "status"))
        lines.reply_to(6)
    to_five = [m for m in lines.replies if m.get("id") == 5]
    assert len(to_five) == 1, json.dumps(to_five)
    assert to_five[0]["result"]["finish_reason"] != "cancelled"
    (refused,) = [m for m in lines.replies if m.get("id") is None]
    assert refused["error"]["data"] == {"kind": "invalid_request", "duplicate_id": 5}
