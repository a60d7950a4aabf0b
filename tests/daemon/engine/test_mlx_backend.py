"""The MLX backend on the real default model (GGUF): generation, KV reuse, text, sampling."""

from __future__ import annotations

import mlx.core  # noqa: F401  - the suite needs MLX (mlx[cpu] on Linux)
import pytest

from daemon.engine.backend import Backend, Sampling
from daemon.engine.gguf import read_gguf
from daemon.engine.mlx import MLXBackend, load
from daemon.engine.mlx_gguf import gguf_tokenizer
from daemon.engine.mlx_tokenizer import TextTokenizer
from daemon.errors import ContextTooLong, InvalidParams
from tests.daemon.engine.conftest_mlx import PROMPTS, default_gguf, render, take


@pytest.fixture(scope="module")
def backend() -> MLXBackend:
    return load(default_gguf(), n_ctx=2048)


@pytest.fixture(scope="module")
def tokenizer() -> TextTokenizer:
    return gguf_tokenizer(read_gguf(default_gguf(), keep_arrays=True))


def prompt_of(backend: MLXBackend, text: str) -> list[int]:
    return backend.tokenize(render(backend, text))


def test_it_implements_the_backend_protocol(backend: MLXBackend) -> None:
    as_protocol: Backend = backend
    assert as_protocol.name == "mlx"
    assert backend.context_length() == 2048
    assert backend.special_tokens() == {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>"}
    assert "<|im_start|>" in (backend.chat_template() or "")


def test_tokenize_parses_special_tokens_and_adds_no_bos(backend: MLXBackend) -> None:
    tokens = prompt_of(backend, "Hi")
    assert tokens[0] == 1  # <|im_start|> from the template, not a BOS we added
    assert tokens.count(1) == 3  # system, user, assistant turns


def test_greedy_generation_stops_at_end_of_turn_without_yielding_it(backend: MLXBackend) -> None:
    tokens = list(backend.generate(prompt_of(backend, PROMPTS[1]), Sampling(temperature=0)))
    assert "".join(t.text for t in tokens) == "The capital of France is Paris."
    assert tokens[-1].id not in (0, 2)


def test_a_new_prompt_reuses_the_cached_prefix_and_gives_the_same_tokens(
    backend: MLXBackend,
) -> None:
    first, second = prompt_of(backend, PROMPTS[2]), prompt_of(backend, PROMPTS[3])
    shared = next(i for i, (a, b) in enumerate(zip(first, second, strict=False)) if a != b)
    take(backend, first, 2)
    reused = take(backend, second, 6)
    assert backend.last_reused_tokens == shared == 24  # the system turn and "<|im_start|>user\n"
    fresh = load(default_gguf(), n_ctx=2048)
    assert take(fresh, second, 6) == reused
    assert fresh.last_reused_tokens == 0


def test_stopping_early_leaves_the_cache_ready_to_continue(backend: MLXBackend) -> None:
    prompt = prompt_of(backend, PROMPTS[0])
    whole = take(backend, prompt, 7)
    head = take(backend, prompt, 3)  # the caller stops iterating after 3 tokens
    assert head == whole[:3]
    rest = take(backend, prompt + head, 4)
    assert backend.last_reused_tokens == len(prompt) + 2  # all but the one token we must run
    assert rest == whole[3:]


def test_a_newer_generation_ends_an_older_one(backend: MLXBackend) -> None:
    older = backend.generate(prompt_of(backend, PROMPTS[1]), Sampling(temperature=0))
    next(older)
    take(backend, prompt_of(backend, PROMPTS[1]), 1)
    assert list(older) == []


def test_generated_text_is_whole_characters(backend: MLXBackend, tokenizer: TextTokenizer) -> None:
    prompt = prompt_of(backend, "Écris une phrase en français sur l'été.")
    tokens = []
    for token in backend.generate(prompt, Sampling(temperature=0)):
        tokens.append(token)
        if len(tokens) == 4:
            break
    text = "".join(t.text for t in tokens)
    assert "é" in text and "\ufffd" not in text
    assert text == tokenizer.tokenizer.decode([t.id for t in tokens])


def test_a_character_split_over_tokens_is_yielded_once_complete(tokenizer: TextTokenizer) -> None:
    text = "Café 🌞 日本語 👍🏽 ok"
    ids = tokenizer.encode(text)
    decoder = tokenizer.decoder(tokenizer.encode("<|im_start|>assistant\n"))
    pieces = [decoder.add(i) for i in ids]
    assert "".join(pieces) == text
    assert "" in pieces  # the emoji's bytes span tokens: nothing until the last one
    assert not any("\ufffd" in p for p in pieces)


def test_sampling_honours_the_seed_and_top_p(backend: MLXBackend) -> None:
    prompt = prompt_of(backend, PROMPTS[4])
    hot = Sampling(temperature=1.5, top_p=1.0, seed=7)
    first = take(backend, prompt, 6, hot)
    assert take(backend, prompt, 6, hot) == first
    assert take(backend, prompt, 6, Sampling(temperature=1.5, top_p=1.0, seed=8)) != first
    greedy = take(backend, prompt, 6, Sampling(temperature=0))
    assert take(backend, prompt, 6, Sampling(temperature=1.5, top_p=1e-6, seed=9)) == greedy


def test_generation_stops_when_the_context_is_full() -> None:
    small = load(default_gguf(), n_ctx=8)
    prompt = small.tokenize("Once upon a time")  # 4 tokens, a story that goes on
    assert len(list(small.generate(prompt, Sampling(temperature=0)))) == 8 - 4 + 1
    with pytest.raises(ContextTooLong):
        small.generate(prompt + prompt, Sampling())
    with pytest.raises(InvalidParams):
        small.generate([], Sampling())
