"""One request's generation, from its prompt to its result: the state a pause must keep.

The runner makes a Generation per `generate` command and steps it token by token.
Everything that depends on the tokens made so far lives here, not in the runner: the
backend's token stream (its sampler holds the penalty's window and the RNG), the answer
text (stop strings, the loop guard, text held back), the counts and the timings. So a
background request can be set aside between two tokens while an interactive one runs,
and go on later as if it had never stopped (issue 17). Per-request state of other
features (a format's token matcher, say) belongs here too, for the same reason.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from daemon.engine.answer import AnswerText
from daemon.engine.backend import Token
from daemon.engine.structured import Constraint


@dataclass(eq=False)
class Generation:
    rid: int
    priority: str  # "interactive" or "background": which runner thread computes it
    prompt: list[int]
    context: dict[str, int]  # what the context window left out (ContextWindow's report)
    max_tokens: int  # what may still follow the prompt in the context, at most `asked`
    asked: int  # the request's own limit (max_tokens or a rewrite's bound)
    answer: AnswerText
    tokens: Iterator[Token]  # the backend's stream: resumable after a break from its loop
    constraint: Constraint | None = None  # options.format's token matcher
    start: float = field(default_factory=time.perf_counter)
    first: float | None = None  # when the first token came
    count: int = 0  # tokens generated
    pending: str = ""  # text released by the answer but not sent yet (deltas are batched)
    sent: float = 0.0  # when the last delta went
    reused: int = 0  # prompt tokens the backend took from its KV cache
    suspended: object | None = None  # the backend's state (Backend.suspend) while paused
    paused_at: float = 0.0
    paused_s: float = 0.0  # time spent paused, in all
    pauses: int = 0

    def take_pending(self, now: float) -> str:
        text, self.pending, self.sent = self.pending, "", now
        return text

    def result(self, finish: str, threads: int | None) -> dict[str, Any]:
        """The `done` event's result. Paused time counts in `total_ms` (the client waited
        it) but not in `tokens_per_s` (the engine's pace)."""
        end = time.perf_counter()
        first = self.first or end
        busy = end - first - self.paused_s
        result: dict[str, Any] = {
            "text": self.answer.text,
            "finish_reason": finish,
            "tokens": {"prompt": len(self.prompt), "completion": self.count},
            "timings": {
                "ttft_ms": round((first - self.start) * 1000, 2),
                "tokens_per_s": round((self.count - 1) / busy, 2)
                if self.count > 1 and busy > 0
                else 0.0,
                "total_ms": round((end - self.start) * 1000, 2),
                "threads": threads,
                "pauses": self.pauses,
                "paused_ms": round(self.paused_s * 1000, 2),
            },
            "cached_tokens": self.reused,
            "context": self.context,
        }
        loop = self.answer.loop
        if loop is not None:
            result["repetition"] = {"period": loop.period, "cut": loop.repeated}
        if self.constraint:
            result["timings"]["constraint_ms"] = round(self.constraint.seconds * 1000, 2)
            if finish != "cancelled":  # a cancelled answer is partial, and says so
                # a limit the context set, not max_tokens, is the context's doing
                ended = "context" if finish == "length" and self.count < self.asked else finish
                result["json"] = self.constraint.value(self.answer.text, ended, self.count)
        return result
