"""Rewrite presets, and the deterministic clean-up of what the model returns."""

from __future__ import annotations

import re

BUILTIN: dict[str, str] = {
    "proofread": "Correct the spelling and grammar of this text.",
    "rewrite": "Rewrite this text so it reads clearly.",
    "friendly": "Rewrite this text in a friendly tone.",
    "professional": "Rewrite this text in a professional tone.",
    "concise": "Rewrite this text to be shorter.",
    "summarize": "Summarize this text in one sentence.",
    "key-points": "List the key points of this text as bullet points.",
}

# A rewrite's answer is bounded by its input: ratio x the text's tokens + extra. A polite
# version of a terse note may grow threefold ("Dear …, … Best regards"); a proofread
# stays about as long as what it corrects; a summary or key points are shorter. Users'
# presets get the loosest bound. Hitting it ends with finish_reason "length".
BOUNDS: dict[str, tuple[float, int]] = {
    "proofread": (1.5, 32),
    "rewrite": (2.0, 48),
    "friendly": (3.0, 64),
    "professional": (3.0, 64),
    "concise": (1.0, 32),
    "summarize": (0.5, 48),
    "key-points": (0.75, 64),
}
USER_BOUND = (3.0, 64)


def bound(name: str, user: dict[str, str]) -> tuple[float, int]:
    """(ratio, extra) for a preset. A user's preset, even one named like a built-in, says
    nothing of the answer's length: it gets the loosest bound."""
    return USER_BOUND if name in user else BOUNDS.get(name, USER_BOUND)


def presets(user: dict[str, str]) -> dict[str, str]:
    return {**BUILTIN, **user}


def rewrite_messages(instruction: str, text: str) -> list[dict[str, str]]:
    """The instruction leads the user turn (small models follow it best there) and is
    identical for every use of a preset, so its tokens stay in the runner's KV cache."""
    return [{"role": "user", "content": f"{instruction.strip()}\n\n{text}"}]


# "Sure! Here is the corrected text:" / "The correct spelling of the text is:" - a short
# first line that announces the answer instead of being it.
_PREAMBLE = re.compile(
    r"^\s*(?=[^\n]{0,120}?:)(?=[^\n:]*\b(?:sure|certainly|of course|here|rewritten|revised|"
    r"corrected|correct|version|summary|key points|text)\b)[^\n:]{0,120}:[ \t]*\n*",
    re.IGNORECASE,
)
_QUOTES = {'"': '"', "'": "'", "“": "”", "«": "»", "`": "`"}
HEAD = 160  # characters held back while deciding whether the reply opens with a preamble


class RewriteCleaner:
    """Strips a model's preamble and wrapping quotes, incrementally, so the streamed
    deltas and the final text are the same string."""

    def __init__(self) -> None:
        self.head: str | None = ""  # None once the head has been decided
        self.tail = ""  # held back: trailing whitespace or a closing quote
        self.open_quote = ""
        self.text = ""

    def feed(self, piece: str, final: bool = False) -> str:
        out = ""
        if self.head is not None:
            self.head += piece
            if not final and len(self.head) < HEAD and "\n" not in self.head.lstrip():
                return ""
            body = _PREAMBLE.sub("", self.head, count=1).lstrip()
            if body[:1] in _QUOTES:
                self.open_quote, body = body[0], body[1:]
            self.head, piece = None, body
        if not self.text and not self.tail:
            piece = piece.lstrip()  # nothing shown yet: no leading blank lines
        buf = self.tail + piece
        keep = len(buf) - len(buf.rstrip())
        if not final and self.open_quote and buf.rstrip().endswith(_QUOTES[self.open_quote]):
            keep = len(buf) - len(buf.rstrip()[:-1])
        if final:
            stripped = buf.rstrip()
            if self.open_quote and stripped.endswith(_QUOTES[self.open_quote]):
                stripped = stripped[:-1].rstrip()
            out, self.tail = stripped, ""
        else:
            out, self.tail = buf[: len(buf) - keep], buf[len(buf) - keep :]
        self.text += out
        return out
