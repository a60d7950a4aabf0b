"""Generated tokens to the text a client may see: stop strings and the loop guard.

Deltas go out while the answer is made and must add up to the final text, so nothing
sent can be taken back. Text that could still be removed is held: the start of a stop
string (StopScanner), and the tokens of a repeat in progress (LoopGuard.at_risk). In
ordinary text a repeat breaks after a token or two and is released at once; only a
block that keeps coming back is held until it is either broken or called a loop.
"""

from __future__ import annotations

import re
from collections import deque

from daemon.engine.backend import Token
from daemon.engine.loops import Loop, LoopGuard
from daemon.engine.stops import StopScanner

_SENTENCE_END = re.compile(r"[.!?…](?=\s|$)")


class AnswerText:
    def __init__(self, stops: list[str], guard: LoopGuard | None) -> None:
        self.scanner = StopScanner(stops)
        self.guard = guard
        self.held: deque[str] = deque()  # released by the scanner, one entry per token
        self._parts: list[str] = []  # everything released so far: the answer
        self.finish: str | None = None  # "stop" (a stop string) or "repetition", once ended
        self.loop: Loop | None = None

    def feed(self, token: Token) -> str:
        """Add a generated token; return the text that is now safe to send."""
        piece, hit = self.scanner.feed(token.text)
        if hit:
            self.finish = "stop"
            return self._release("".join(self.held) + piece, clear=True)
        if self.guard is None:
            return self._release(piece)
        self.held.append(piece)
        loop = self.guard.feed(token.id)
        if loop is not None:
            self.finish, self.loop = "repetition", loop
            return self._cut(loop)
        out = []
        while len(self.held) > self.guard.at_risk:
            out.append(self.held.popleft())
        return self._release("".join(out))

    def flush(self) -> str:
        """Generation ended another way (end of turn, length, cancel): release the rest."""
        if self.finish == "stop":
            return ""
        return self._release("".join(self.held) + self.scanner.flush(), clear=True)

    def _cut(self, loop: Loop) -> str:
        """Keep the block's first copy, then finish its line or sentence from the second."""
        held = list(self.held)
        keep = "".join(held[: len(held) - loop.repeated])
        second = "".join(held[len(held) - loop.repeated :][: loop.period])
        return self._release(keep + _clean_end(self.text[-200:] + keep, second), clear=True)

    @property
    def text(self) -> str:
        return "".join(self._parts)

    def _release(self, text: str, clear: bool = False) -> str:
        """Add to the answer (a list: appending to a long string copies it each time)."""
        if clear:
            self.held.clear()
        if text:
            self._parts.append(text)
        return text


def _clean_end(kept: str, following: str) -> str:
    """What of ``following`` (the repeat after the cut) ends the kept text cleanly."""
    last = kept.rstrip(" \t")[-1:]
    if not last or last == "\n" or last in ".!?…":
        return ""
    newline = following.find("\n")
    if newline >= 0:
        return following[: newline + 1]
    end = _SENTENCE_END.search(following)
    return following[: end.end()] if end else ""
