"""The loop guard: notice when an answer starts cycling, so it ends instead of repeating.

Small models fall into loops: a signature block, a sentence or a single token repeated
until the token limit or the context runs out. A repetition penalty makes loops rarer,
not impossible, so the runner also watches the token ids it generates, whatever the
engine: when the latest tokens are the same block of ``period`` tokens over and over,
the answer is cut back to the first copy and ends with ``finish_reason: "repetition"``.

Detection costs O(k) per token, k being how often the new token occurred in the last
``max_period`` tokens: for every earlier occurrence at distance p, the run of tokens
equal to the token p before them grows by one; every other run ends.

What legitimately repeats — numbered lists, table rows and separators, similar lines
of code — breaks the runs (the numbers, cell values and names differ) or stays short,
so a loop is only called once the repeated tokens are both many (``min_repeat``) and at
least ``copies`` copies of the block. tests/daemon/engine/test_loops.py holds the
measurements behind the defaults.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

MAX_PERIOD = 128  # longest block (in tokens) recognised as a loop: a signature, a paragraph
MIN_REPEAT = 96  # tokens that must repeat before any loop is called: spares short repeats
COPIES = 3  # and the block must have been made this many times in a row


@dataclass(frozen=True)
class Loop:
    period: int  # tokens in the repeated block
    repeated: int  # trailing tokens that repeat the block: what the answer is cut by


class LoopGuard:
    """Fed token ids one by one; says when the tail has become a loop."""

    def __init__(
        self, max_period: int = MAX_PERIOD, min_repeat: int = MIN_REPEAT, copies: int = COPIES
    ) -> None:
        self.max_period = max_period
        self.min_repeat = min_repeat
        self.copies = copies
        self.count = 0
        self.runs: dict[int, int] = {}  # period -> trailing tokens equal to those p before
        # Trailing tokens that a loop found later could still cut (the longest run): the
        # text of these is held back.
        self.at_risk = 0
        self._seen: dict[int, deque[int]] = {}  # token -> its recent positions, newest last

    def needed(self, period: int) -> int:
        """Repeated tokens that make a loop of this period."""
        return max(self.min_repeat, (self.copies - 1) * period)

    def feed(self, token: int) -> Loop | None:
        """Add the next token; return the loop if the answer now ends in one."""
        at = self.count
        self.count += 1
        positions = self._seen.setdefault(token, deque())
        while positions and at - positions[0] > self.max_period:
            positions.popleft()
        runs = {at - q: self.runs.get(at - q, 0) + 1 for q in positions}
        positions.append(at)
        self.runs = runs
        self.at_risk = max(runs.values(), default=0)
        if len(self._seen) > 4 * self.max_period:  # forget tokens long out of the window
            self._seen = {t: q for t, q in self._seen.items() if at - q[-1] <= self.max_period}
        if self.at_risk < self.min_repeat:  # no run is long enough for any period
            return None
        period = min((p for p, run in runs.items() if run >= self.needed(p)), default=None)
        return None if period is None else Loop(period, runs[period])
