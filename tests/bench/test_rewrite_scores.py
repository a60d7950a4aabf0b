"""bench/rewrite_eval.py's automatic checks catch what a user would reject."""

from __future__ import annotations

import pytest

from bench.rewrite_cases import CASES
from bench.rewrite_scores import language, passed, score

SOURCE = "i has a cat and she like to sleeps on the windowsil all day"


def test_there_are_at_least_thirty_inputs_of_every_kind() -> None:
    assert len(CASES) >= 30 and len({c.id for c in CASES}) == len(CASES)
    kinds = {c.kind for c in CASES}
    assert kinds == {"informal", "typos", "long", "list", "foreign", "code"}
    assert len({c.lang for c in CASES}) >= 5
    for case in CASES:
        if case.kind != "foreign":
            assert case.lang == "en" and language(case.text) in ("en", None), case.id
        else:
            assert language(case.text) == case.lang, case.id


def test_a_good_proofread_passes_every_check() -> None:
    good = "I have a cat, and she likes to sleep on the windowsill all day."
    checks = score("proofread", SOURCE, good, "en")
    assert passed(checks) and checks["similar"] is True and checks["format"] is None


@pytest.mark.parametrize(
    ("output", "failed"),
    [
        ("", "nonempty"),
        ("Here is the corrected text:\nI have a cat.", "clean"),
        ('"I have a cat and she likes to sleep on the windowsill all day."', "clean"),
        ("I have a cat who likes to sleep all day.\n\nNote: I corrected the verbs.", "clean"),
        ("I'm sorry, but I can't help with that request.", "no_refusal"),
        ("Dear Sir or Madam, " * 20, "length"),
        ("A cat.", "similar"),
        ("J'ai un chat et elle aime dormir sur le rebord de la fenêtre toute la journée.",
         "language"),
    ],
)  # fmt: skip
def test_a_bad_output_fails_the_check_that_names_its_fault(output: str, failed: str) -> None:
    checks = score("proofread", SOURCE, output, "en")
    assert checks[failed] is False and not passed(checks)


def test_key_points_must_be_a_list_and_a_summary_one_or_two_sentences() -> None:
    text = next(c.text for c in CASES if c.id == "onboarding")
    bullets = "- Customers struggled with two steps.\n- Both steps were redesigned."
    assert score("key-points", text, bullets, "en")["format"] is True
    assert score("key-points", text, "Customers struggled. We fixed it.", "en")["format"] is False
    rambling = "One. Two. Three. Four."
    assert score("summarize", text, "We made onboarding easier.", "en")["format"] is True
    assert score("summarize", text, rambling, "en")["format"] is False


def test_numbers_and_code_must_survive_a_rewrite_but_not_a_summary() -> None:
    text = "set `max_connections = 50` in config.toml and restart, the default of 10 is too low"
    kept = "Set `max_connections = 50` in config.toml and restart; the default of 10 is too low."
    lost = "Raise the connection limit in the config and restart."
    assert score("rewrite", text, kept, "en")["facts"] is True
    assert score("rewrite", text, lost, "en")["facts"] is False
    assert score("summarize", text, lost, "en")["facts"] is None


def test_the_language_guess_tells_the_inputs_languages_apart() -> None:
    assert language("Hallo zusammen, ich bin morgen nicht im Büro und wir sind weg") == "de"
    assert language("El proyecto va bien pero estamos un poco retrasados con la obra") == "es"
    assert language("ok") is None
