"""Which turns go into the prompt when a conversation outgrows the context (pure logic:
one token per word here; tests/daemon/test_answers.py runs the real model)."""

from __future__ import annotations

import pytest

from daemon.engine.context import MIN_ANSWER, ContextWindow, Messages
from daemon.errors import ContextTooLong

N_CTX, RESERVE = 1024, 256  # budget 768; a trim aims at 768 - 1024 // 4 = 512
TARGET = 512


def tokens_of(messages: Messages) -> list[int]:
    """A word is a token; each message costs 3 more (its template), like a chat template."""
    out: list[int] = []
    for m in messages:
        out += [hash(m["role"]) % 100, 1, 2] + [hash(w) % 50_000 for w in m["content"].split()]
    return out


def chat(turns: int, words: int = 50, system: bool = True) -> Messages:
    messages = [{"role": "system", "content": "Be brief."}] if system else []
    for i in range(turns):
        messages.append({"role": "user", "content": f"question {i} " + "word " * words})
        messages.append({"role": "assistant", "content": f"answer {i} " + "word " * words})
    return messages


def ask(messages: Messages, text: str = "and now?") -> Messages:
    return [*messages, {"role": "user", "content": text}]


def test_a_conversation_that_fits_is_sent_whole() -> None:
    messages = ask(chat(3))
    fitted = ContextWindow().fit(messages, tokens_of, N_CTX, RESERVE)
    assert fitted.tokens == tokens_of(messages)
    assert (fitted.dropped_turns, fitted.dropped_messages) == (0, 0)


def test_the_oldest_whole_turns_go_and_the_system_prompt_and_last_message_stay() -> None:
    messages = ask(chat(20))  # ~2,100 tokens
    fitted = ContextWindow().fit(messages, tokens_of, N_CTX, RESERVE)
    kept = [messages[0], *messages[1 + fitted.dropped_messages :]]
    assert fitted.tokens == tokens_of(kept)
    assert fitted.dropped_messages == 2 * fitted.dropped_turns
    assert kept[1]["role"] == "user" and kept[-1] == messages[-1]
    # It drops to below the budget less the slack, and no more than that needs.
    assert len(fitted.tokens) <= TARGET
    fewer = [messages[0], *messages[1 + fitted.dropped_messages - 2 :]]
    assert len(tokens_of(fewer)) > TARGET


def test_the_next_turns_keep_the_same_first_message_until_the_context_fills_again() -> None:
    window = ContextWindow()
    prompt = ask(chat(20))
    cut = window.fit(prompt, tokens_of, N_CTX, RESERVE)
    previous, shared = cut.tokens, 0
    while True:
        prompt = ask([*prompt, {"role": "assistant", "content": "ok " * 20}], f"more {shared}")
        fitted = window.fit(prompt, tokens_of, N_CTX, RESERVE)
        assert len(fitted.tokens) <= N_CTX - RESERVE
        same_start = tokens_of([prompt[0], *prompt[1 + cut.dropped_messages :]])
        if fitted.dropped_messages != cut.dropped_messages:
            assert len(same_start) > N_CTX - RESERVE  # it moved only when it had to
            break
        assert fitted.tokens == same_start
        assert fitted.tokens[: len(previous)] == previous  # the last prompt is its prefix
        previous, shared = fitted.tokens, shared + 1
    # The slack (1/4 of the context) holds several turns of ~30 tokens: their prompts all
    # share the prefix in the KV cache.
    assert shared >= 6


def test_another_conversation_gets_its_own_cut() -> None:
    window = ContextWindow()
    window.fit(ask(chat(20)), tokens_of, N_CTX, RESERVE)
    other = ask(chat(20, words=40, system=False))
    fitted = window.fit(other, tokens_of, N_CTX, RESERVE)
    assert len(fitted.tokens) <= TARGET
    assert fitted.tokens == tokens_of(other[fitted.dropped_messages :])


def test_a_last_message_with_too_little_room_left_keeps_only_itself() -> None:
    messages = ask(chat(5), "word " * 900)  # fits, but leaves less than the reserve
    fitted = ContextWindow().fit(messages, tokens_of, N_CTX, RESERVE)
    assert fitted.dropped_turns == 5
    assert fitted.tokens == tokens_of([messages[0], messages[-1]])


def test_only_a_message_larger_than_the_context_is_an_error_saying_how_much_to_cut() -> None:
    messages = ask(chat(2), "word " * 1000)
    with pytest.raises(ContextTooLong) as err:
        ContextWindow().fit(messages, tokens_of, N_CTX, RESERVE)
    alone = len(tokens_of([messages[0], messages[-1]]))
    assert err.value.data == {
        "tokens": alone,
        "context": N_CTX,
        "cut": alone - (N_CTX - MIN_ANSWER),
    }
    assert f"Cut at least {alone - (N_CTX - MIN_ANSWER)} tokens" in err.value.message
    # One word fewer than that cut, and it is answered.
    fits = ask(chat(2), "word " * (1000 - err.value.data["cut"]))
    assert ContextWindow().fit(fits, tokens_of, N_CTX, RESERVE).dropped_turns == 2
