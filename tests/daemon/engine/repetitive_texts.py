"""Texts that repeat on purpose: the loop guard must let every one of them through.

Tokenized with the default model's own tokenizer by the tests (test_loops.py), so the
runs the guard sees are the ones a real answer would produce.
"""

from __future__ import annotations

NUMBERED = "".join(f"{i}. Check the value and write it down.\n" for i in range(1, 41))

STEPS = "\n".join(
    f"Step {i}: Add one cup of flour, stir for a minute, then rest." for i in range(1, 21)
)

BULLETS = "\n".join(f"- Item {chr(65 + i)}: pending" for i in range(26))

TABLE = "| Name | Age | Role | City |\n| --- | --- | --- | --- |\n" + "".join(
    f"| Person {i} | {20 + i} | Engineer | Paris |\n" for i in range(30)
)

WIDE_SEPARATOR = "| " + " | ".join(f"H{i}" for i in range(12)) + " |\n|" + " --- |" * 12 + "\n"

EMPTY_TABLE = "| Day | Task | Done |\n| --- | --- | --- |\n" + "|  |  |  |\n" * 4

CODE = "\n".join(f"    config.set_option('option_{i}', value_{i}, default=None)" for i in range(30))

ARRAY = "buffer = [" + ", ".join(["0"] * 32) + "]\n"

HEX = (
    "data = {\n"
    + "".join("    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,\n" for _ in range(2))
    + "}\n"
)

MATRIX = "board = [\n" + "".join("    [0, 0, 0, 0, 0, 0, 0, 0],\n" for _ in range(4)) + "]\n"

IF_CHAIN = "\n".join(
    f"if x == {i}:\n    return handle_{i}(x)\nelif y == {i}:\n    return other_{i}(y)"
    for i in range(12)
)

SONG = (
    "Row, row, row your boat,\nGently down the stream.\n"
    "Merrily, merrily, merrily, merrily,\nLife is but a dream.\n"
) * 2

CSV = "date,city,temperature\n" + "".join(
    f"2024-01-{d:02d},Paris,{d % 7 + 3}\n" for d in range(1, 31)
)

RULE = "Results\n" + "=" * 60 + "\n\n" + "-" * 60 + "\n"

LETTER = (
    "Dear Mr. Smith,\n\nI hope this email finds you well. I am writing to ask you to "
    "repair the heating in my flat. It has not worked since Monday.\n\nThank you for "
    "your help.\n\nBest regards,\n[Your Name]\n[Your Address]\n[Your Phone Number]\n"
)

TEXTS = {
    "numbered list": NUMBERED,
    "recipe steps": STEPS,
    "bullets": BULLETS,
    "table": TABLE,
    "wide table separator": WIDE_SEPARATOR,
    "empty table": EMPTY_TABLE,
    "similar code lines": CODE,
    "zero array": ARRAY,
    "hex bytes": HEX,
    "matrix": MATRIX,
    "if chain": IF_CHAIN,
    "song refrain": SONG,
    "csv": CSV,
    "rules": RULE,
    "letter with signature": LETTER,
}
