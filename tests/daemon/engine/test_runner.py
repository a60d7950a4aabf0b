"""The runner's generate loop around a scripted backend: bounds, loops, context (the real
engines run the same loop in tests/daemon/test_answers.py)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

from daemon.engine.backend import Sampling, Token
from daemon.engine.runner import Runner


class Scripted:
    """A backend that says ``script`` (token ids) again and again; a word is a token."""

    def __init__(self, script: list[int], n_ctx: int = 4096) -> None:
        self.script = script
        self.n_ctx = n_ctx
        self.sampling: Sampling | None = None

    def context_length(self) -> int:
        return self.n_ctx

    def chat_template(self) -> str:
        return "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}"

    def special_tokens(self) -> dict[str, str]:
        return {}

    def tokenize(self, text: str) -> list[int]:
        return [hash(w) % 1000 for w in text.split()]

    def generate(self, prompt: list[int], sampling: Sampling) -> Iterator[Token]:
        self.sampling = sampling
        while True:
            for i in self.script:
                yield Token(i, f"t{i}" + ("\n" if i % 10 == 9 else " "))


def run(backend: Scripted, **cmd: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(delta events, the done or error event)."""
    out = io.StringIO()
    runner = Runner(backend, out)  # type: ignore[arg-type]
    messages = cmd.pop("messages", [{"role": "user", "content": "go"}])
    runner.generate({"rid": 1, "messages": messages, **cmd})
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    return events[:-1], events[-1]


def test_a_rewrite_bound_follows_the_length_of_its_text() -> None:
    bound = {"text": "one two three four", "ratio": 1.5, "extra": 2}  # 4 words: 1.5 * 4 + 2
    deltas, done = run(Scripted(list(range(1000))), bound=bound)
    assert done["result"]["finish_reason"] == "length"
    assert done["result"]["tokens"]["completion"] == 8
    assert "".join(d["text"] for d in deltas) == done["result"]["text"]
    # An explicit max_tokens below the bound wins.
    _, done = run(Scripted(list(range(1000))), bound=bound, max_tokens=3)
    assert done["result"]["tokens"]["completion"] == 3


def test_a_loop_ends_the_answer_with_finish_reason_repetition_and_one_copy() -> None:
    block = list(range(100, 120))  # 20 tokens, two lines
    backend = Scripted(list(range(200, 260)) + block * 1000)
    deltas, done = run(backend, max_tokens=5000, repeat_penalty=1.1, repeat_last_n=32)
    result = done["result"]
    assert result["finish_reason"] == "repetition"
    assert result["repetition"] == {"period": 20, "cut": 96}
    assert result["tokens"]["completion"] == 60 + 20 + 96
    assert "".join(d["text"] for d in deltas) == result["text"]
    assert result["text"].count("t100 ") == 1 and result["text"].endswith("\n")
    assert backend.sampling == Sampling(repeat_penalty=1.1, repeat_last_n=32)


def test_with_the_guard_off_a_loop_runs_to_max_tokens() -> None:
    _, done = run(Scripted(list(range(100, 120))), max_tokens=500, loop_guard=False)
    assert done["result"]["finish_reason"] == "length"
    assert done["result"]["tokens"]["completion"] == 500


def test_a_long_conversation_is_trimmed_and_says_so() -> None:
    history = []
    for i in range(40):
        history += [{"role": "user", "content": f"q{i} " + "w " * 30},
                    {"role": "assistant", "content": f"a{i} " + "w " * 30}]  # fmt: skip
    messages = [{"role": "system", "content": "s"}, *history, {"role": "user", "content": "x"}]
    _, done = run(Scripted(list(range(1000)), n_ctx=1024), messages=messages, max_tokens=64)
    result = done["result"]
    assert result["context"]["dropped_turns"] > 20
    assert result["context"]["window"] == 1024
    assert result["tokens"]["prompt"] + 64 <= 1024


def test_a_message_larger_than_the_context_is_an_error_with_how_much_to_cut() -> None:
    messages = [{"role": "user", "content": "w " * 5000}]
    deltas, error = run(Scripted([1]), messages=messages)
    assert deltas == []
    assert error["event"] == "error" and error["kind"] == "context_too_long"
    assert error["data"]["cut"] == 5000 + 1 - (4096 - 64)  # "user:" is a token too
