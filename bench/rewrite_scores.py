"""Automatic checks of one rewrite: what a user would reject without reading twice.

Each check is a pass or a fail, or None where it does not apply (the proofread
similarity only applies to proofread; the facts check not to summaries):

- ``nonempty``: something came back;
- ``clean``: no preamble ("Here is…:"), no wrapping quotes, no explanation after it;
- ``no_refusal``: no "I can't" / "As an AI";
- ``length``: the length ratio to the input is within the preset's bounds (a rewrite that
  grows far past its input has invented content; a summary must be shorter);
- ``format``: key-points is a list of bullets; summarize is one or two sentences;
- ``similar``: proofread keeps the text (character similarity to the input ≥ 0.7);
- ``language``: the output is in the input's language (a stopword-count guess);
- ``facts``: every number and `code span` of the input is still there (not for summaries).
"""

from __future__ import annotations

import re
from difflib import SequenceMatcher

CHECKS = ("nonempty", "clean", "no_refusal", "length", "format", "similar", "language", "facts")

# (lowest, highest) length ratio of output to input, per preset; short inputs (under
# SHORT characters) may grow a little more: "thx" becomes "Thank you".
BOUNDS = {
    "proofread": (0.75, 1.35),
    "rewrite": (0.5, 1.8),
    "friendly": (0.5, 2.0),
    "professional": (0.5, 2.0),
    "concise": (0.1, 1.0),
    "summarize": (0.05, 0.8),
    "key-points": (0.2, 1.6),
}
SHORT, SHORT_EXTRA = 160, 0.6
SIMILAR = 0.7

_PREAMBLE = re.compile(
    r"^\s*(sure|certainly|of course|here is|here's|here are|below is|the (corrected|revised|"
    r"rewritten)|rewritten|revised|corrected|summary|key points)\b[^\n]{0,80}:?\s*(\n|$)",
    re.IGNORECASE,
)
_EXPLANATION = re.compile(
    r"\n\s*(note|explanation|changes( made)?|i (have|'ve) (corrected|changed|made|rewritten)|"
    r"i (corrected|changed|made)|this (version|rewrite|revision))\b",
    re.IGNORECASE,
)
_REFUSAL = re.compile(
    r"\b(i can(no|')t|i cannot|i am unable|i'm unable|i'm sorry|i am sorry|as an ai|"
    r"as a language model)\b",
    re.IGNORECASE,
)
_QUOTES = {'"': '"', "'": "'", "“": "”", "«": "»", "‘": "’"}
_BULLET = re.compile(r"^\s*([-*•]|\d+[.)])\s+\S", re.MULTILINE)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_CODE = re.compile(r"`([^`\n]+)`")
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)

STOPWORDS = {
    "en": "the a an and or of to in is are was were be it that this for on with you i we "
          "they not but at by from have has can will my your our",
    "fr": "le la les un une des et ou de du à au aux est sont que qui pour dans sur avec "
          "pas ne je tu il nous vous ils ce cette mais",
    "de": "der die das ein eine und oder zu im ist sind nicht ich du wir sie es mit auf "
          "für den dem des von aber wenn weil auch",
    "es": "el la los las un una y o de del en es son que por para con no se lo su pero "
          "muy como si nos estamos",
    "it": "il lo la gli le un una e o di del della in è sono che per con non si ma come "
          "mi ti ci anche perché",
    "pt": "o a os as um uma e ou de do da em é são que para com não se mas por você "
          "eu isso ainda",
    "nl": "de het een en of van in is zijn dat die voor met niet ik je we ze maar op "
          "ook als",
}  # fmt: skip
_STOP = {lang: frozenset(words.split()) for lang, words in STOPWORDS.items()}


def language(text: str) -> str | None:
    """The language with the most stopwords in ``text``, or None if it is too short
    to tell (fewer than two stopwords, or a tie)."""
    words = [w.lower() for w in _WORD.findall(text)]
    counts = sorted(((sum(w in stop for w in words), lang) for lang, stop in _STOP.items()),
                    reverse=True)  # fmt: skip
    (best, lang), (second, _) = counts[0], counts[1]
    return lang if best >= 2 and best > second else None


def _sentences(text: str) -> int:
    return len([s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s])


def score(preset: str, source: str, output: str, lang: str) -> dict[str, bool | None]:
    """Every check of one output; None where a check does not apply."""
    out = output.strip()
    checks: dict[str, bool | None] = dict.fromkeys(CHECKS)
    checks["nonempty"] = bool(out)
    if not out:
        return {name: (False if name != "similar" or preset == "proofread" else None)
                for name in CHECKS}  # fmt: skip
    wrapped = out[0] in _QUOTES and out.endswith(_QUOTES[out[0]]) and len(out) > 1
    checks["clean"] = not (_PREAMBLE.match(out) or _EXPLANATION.search(out) or wrapped)
    checks["no_refusal"] = not _REFUSAL.search(out)
    low, high = BOUNDS.get(preset, (0.3, 2.0))
    if len(source) < SHORT:
        high += SHORT_EXTRA
    checks["length"] = low <= len(out) / max(len(source), 1) <= high
    if preset == "key-points":
        checks["format"] = len(_BULLET.findall(out)) >= 2 or (
            len(source) < SHORT and len(_BULLET.findall(out)) >= 1
        )
    elif preset == "summarize":
        checks["format"] = _sentences(out) <= 2
    if preset == "proofread":
        checks["similar"] = SequenceMatcher(None, source.lower(), out.lower()).ratio() >= SIMILAR
    guessed = language(out)
    checks["language"] = guessed == lang or (guessed is None and len(_WORD.findall(out)) < 8)
    if preset not in ("summarize",):
        numbers = set(_NUMBER.findall(source))
        code = set(_CODE.findall(source)) if preset != "key-points" else set()
        if numbers or code:
            kept = all(n in out for n in numbers) and all(c in out for c in code)
            checks["facts"] = kept
    return checks


def passed(checks: dict[str, bool | None]) -> bool:
    return all(v is not False for v in checks.values())
