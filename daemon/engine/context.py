"""Fitting a conversation into the model's context window.

A conversation must never fail for being long. When the system prompt, the history,
the new message and room for the answer exceed the context, the oldest turns are left
out of the prompt (the daemon still stores all of them). A turn is a user message and
the replies after it, so the prompt always starts like a real conversation.

Trimming by the minimum each time would change the prompt's start at every turn, and
with it the KV cache's shared prefix: every turn would recompute the whole history.
So a trim drops a quarter of the window more than needed, and the window remembers where it
cut: the next turns keep that same first message and reuse the cache until the
context fills again. Only a last message that cannot fit with the system prompt and a
minimal answer gets ContextTooLong, saying how many tokens to cut.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass

from daemon.errors import ContextTooLong

Messages = list[dict[str, str]]
MIN_ANSWER = 64  # tokens the answer must have room for, or the message is too long
# A trim frees a quarter of the window beyond what it needs: measured on the default
# model, a turn that moves the cut recomputes the whole prompt (~7x the time to first
# token of a turn that reuses the cache), so cuts should be rare. See docs/benchmarks.md.
SLACK = 4


@dataclass(frozen=True)
class Fitted:
    tokens: list[int]  # the prompt
    dropped_turns: int = 0
    dropped_messages: int = 0

    def report(self, window: int) -> dict[str, int]:
        return {
            "dropped_turns": self.dropped_turns,
            "dropped_messages": self.dropped_messages,
            "window": window,
        }


class ContextWindow:
    """Chooses which turns go into the prompt; remembers its last cut (one runner, one
    cache: the conversation served last is the one whose prefix is worth keeping)."""

    def __init__(self) -> None:
        self._cut: tuple[int, str] | None = None  # (messages left out, digest of them)

    def fit(
        self, messages: Messages, tokens_of: Callable[[Messages], list[int]], n_ctx: int,
        reserve: int,
    ) -> Fitted:  # fmt: skip
        """The prompt for ``messages`` that leaves ``reserve`` tokens for the answer."""
        budget = n_ctx - reserve
        whole = tokens_of(messages)
        if len(whole) <= budget:
            return Fitted(whole)
        head, turns, last = _split(messages)

        def prompt(dropped: int) -> list[int]:
            return tokens_of(head + [m for turn in turns[dropped:] for m in turn] + last)

        def fitted(dropped: int, tokens: list[int]) -> Fitted:
            gone = [m for turn in turns[:dropped] for m in turn]
            self._cut = (len(head) + len(gone), _digest(head + gone))
            return Fitted(tokens, dropped, len(gone))

        again = self._same_cut(messages, head, turns)
        if again is not None and len(tokens := prompt(again)) <= budget:
            return fitted(again, tokens)
        least = prompt(len(turns))
        if len(least) > n_ctx - MIN_ANSWER:
            cut = len(least) - (n_ctx - MIN_ANSWER)
            raise ContextTooLong(
                f"the message is too long for this model: with the system prompt it is "
                f"{len(least)} tokens, and the context holds {n_ctx} including at least "
                f"{MIN_ANSWER} for the answer. Cut at least {cut} tokens (about "
                f"{max(1, cut * 3 // 4)} words), or raise n_ctx in config.toml if the model "
                "supports a longer context.",
                tokens=len(least),
                context=n_ctx,
                cut=cut,
            )
        # Fewest turns dropped that bring the prompt under the budget less the slack.
        target = budget - n_ctx // SLACK
        lo, hi = 1, len(turns)  # dropping them all always qualifies: it is the last resort
        while lo < hi:
            mid = (lo + hi) // 2
            if len(prompt(mid)) <= target:
                hi = mid
            else:
                lo = mid + 1
        return fitted(hi, least if hi >= len(turns) else prompt(hi))

    def _same_cut(self, messages: Messages, head: Messages, turns: list[Messages]) -> int | None:
        """How many turns the last cut dropped, if ``messages`` continue that conversation."""
        if self._cut is None:
            return None
        count, digest = self._cut
        dropped, total = 0, len(head)
        while total < count and dropped < len(turns):
            total += len(turns[dropped])
            dropped += 1
        if total != count or _digest(messages[:count]) != digest:
            return None
        return dropped


def _split(messages: Messages) -> tuple[Messages, list[Messages], Messages]:
    """(leading system messages, older turns, the last user message and what follows)."""
    start = 0
    while start < len(messages) and messages[start]["role"] == "system":
        start += 1
    last = max((i for i in range(start, len(messages)) if messages[i]["role"] == "user"),
               default=len(messages) - 1)  # fmt: skip
    last = max(last, start)
    turns: list[Messages] = []
    for message in messages[start:last]:
        if message["role"] == "user" or not turns:
            turns.append([])
        turns[-1].append(message)
    return messages[:start], turns, messages[last:]


def _digest(messages: Messages) -> str:
    return hashlib.sha256(json.dumps(messages, ensure_ascii=False).encode()).hexdigest()
