"""The behaviours every engine must share, run through the daemon on each engine."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import pytest

from daemon.errors import RunnerFailed
from tests.conftest import Daemon

ENGINES = ["llamacpp", "mlx"]
PROMPT = [{"role": "user", "content": "Write a very long story about a dragon."}]


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def opts(engine: str, **extra: Any) -> dict[str, Any]:
    return {"engine": engine, "temperature": 0, **extra}


def runner_pid(daemon: Daemon, engine: str) -> int:
    with daemon.client() as c:
        return next(r["pid"] for r in c.call("status")["runners"] if r["engine"] == engine)


def test_answers_on_each_engine(daemon: Daemon, engine: str) -> None:
    with daemon.client() as c:
        result = c.call("chat", {"messages": PROMPT, "options": opts(engine, max_tokens=8)})
    assert result["engine"] == engine
    assert result["text"].strip() and result["tokens"]["completion"] == 8


def test_cancel_stops_within_a_token(daemon: Daemon, engine: str) -> None:
    with daemon.client() as c:
        rid = c.send("chat", {"messages": PROMPT, "options": opts(engine, max_tokens=500)})
        count = 0
        sent_at = 0
        tokens_then = 0

        def on_delta(_: str, p: dict[str, Any]) -> None:
            nonlocal count, sent_at, tokens_then
            count += 1
            if count == 3:
                c.cancel(rid)
                sent_at, tokens_then = count, p["tokens"]

        result = c.wait(rid, on_delta)
    assert result["finish_reason"] == "cancelled"
    assert count - sent_at <= 2
    # Made while the cancel travelled, then the token in flight (see test_server.py).
    assert result["tokens"]["completion"] <= tokens_then + 3


def test_stop_strings_end_the_answer_before_them(daemon: Daemon, engine: str) -> None:
    with daemon.client() as c:
        full = c.call("chat", {"messages": PROMPT, "options": opts(engine, max_tokens=24)})
        words = full["text"].split()
        stop = words[len(words) // 2]
        deltas: list[str] = []
        cut = c.call(
            "chat",
            {"messages": PROMPT, "options": opts(engine, max_tokens=24, stop=[stop])},
            lambda m, p: deltas.append(p["text"]),
        )
    assert cut["finish_reason"] == "stop"
    assert stop not in cut["text"]
    assert full["text"].startswith(cut["text"])
    assert "".join(deltas) == cut["text"]


def test_a_repeated_prompt_prefix_comes_from_the_cache(daemon: Daemon, engine: str) -> None:
    base = [{"role": "user", "content": "Remember the word lighthouse."}]
    with daemon.client() as c:
        first = c.call("chat", {"messages": base, "options": opts(engine, max_tokens=4)})
        turn2 = [
            *base,
            {"role": "assistant", "content": first["text"]},
            {"role": "user", "content": "What word?"},
        ]
        second = c.call("chat", {"messages": turn2, "options": opts(engine, max_tokens=4)})
    assert second["cached_tokens"] >= first["tokens"]["prompt"] - 2


def test_a_killed_runner_fails_its_request_fast_and_the_next_one_works(
    fresh_daemon: Daemon, engine: str
) -> None:
    with fresh_daemon.client() as c:
        c.call("chat", {"messages": PROMPT, "options": opts(engine, max_tokens=2)})
        pid = runner_pid(fresh_daemon, engine)
        rid = c.send("chat", {"messages": PROMPT, "options": opts(engine, max_tokens=2000)})
        killed_at: list[float] = []

        def on_delta(_: str, p: dict[str, Any]) -> None:
            if not killed_at:
                os.kill(pid, signal.SIGKILL)
                killed_at.append(time.monotonic())

        with pytest.raises(RunnerFailed) as err:
            c.wait(rid, on_delta)
        assert time.monotonic() - killed_at[0] < 1.0
        assert "signal 9" in err.value.message
        again = c.call("chat", {"messages": PROMPT, "options": opts(engine, max_tokens=3)})
        assert again["text"]
        assert runner_pid(fresh_daemon, engine) != pid
