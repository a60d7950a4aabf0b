"""The MLX backend: runs an MLX model folder or a llama-family GGUF file with mlx-lm.

MLX is Apple Silicon's array framework (it also runs, slowly, on a CPU). We use
mlx-lm for the model code and the KV cache, but drive generation ourselves: the
cache must always hold exactly the tokens we believe it holds, so the next prompt
can reuse its longest shared prefix even after the caller stopped iterating
midway (which is how the runner cancels).
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daemon.engine.backend import Mask, Sampling, Token
from daemon.engine.gguf import read_gguf
from daemon.engine.mlx_gguf import build_llama, check_mlx_gguf, gguf_tokenizer, gguf_weights
from daemon.engine.mlx_gguf import mlx_config as gguf_config
from daemon.engine.mlx_tokenizer import TextTokenizer, folder_tokenizer
from daemon.errors import ContextTooLong, EngineUnavailable, InvalidModel, InvalidParams

if TYPE_CHECKING:
    from llguidance import LLTokenizer

try:
    import mlx.core as mx
    from mlx.nn.layers.base import Module
    from mlx_lm.models.cache import can_trim_prompt_cache, make_prompt_cache, trim_prompt_cache
    from mlx_lm.sample_utils import (
        apply_min_p,
        apply_top_k,
        apply_top_p,
        make_repetition_penalty,
    )
except ImportError as exc:  # pragma: no cover - depends on the platform
    raise EngineUnavailable(
        f"the MLX engine is not installed ({exc.name} is missing): "
        "install hearth with the 'mlx-cpu' extra, or use the llama.cpp engine"
    ) from exc

PREFILL_CHUNK = 512  # prompt tokens per forward pass: bounds memory on long prompts
TOP_K, MIN_P = 40, 0.05  # the same cut-offs as the llama.cpp backend when sampling


def load(path: Path, *, n_ctx: int) -> MLXBackend:
    """Load an MLX model folder (config.json + safetensors) or a .gguf file."""
    path = Path(path)
    if path.is_dir():
        model, tokenizer, trained_ctx = _load_folder(path)
    elif path.suffix.lower() == ".gguf":
        info = read_gguf(path, keep_arrays=True)
        check_mlx_gguf(info)
        config = gguf_config(info)
        model = build_llama(config, gguf_weights(info, config))
        tokenizer, trained_ctx = gguf_tokenizer(info), info.context_length
    else:
        raise InvalidModel(
            f"{path.name} is neither an MLX model folder nor a .gguf file", path=str(path)
        )
    return MLXBackend(model, tokenizer, n_ctx=n_ctx if n_ctx > 0 else trained_ctx)


def _load_folder(path: Path) -> tuple[Module, TextTokenizer, int]:
    from mlx_lm.utils import load_model

    tokenizer = folder_tokenizer(path)
    try:
        model, config = load_model(path)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InvalidModel(
            f"{path.name} is not an MLX model folder mlx-lm can load: {exc}", path=str(path)
        ) from exc
    return model, tokenizer, int(config.get("max_position_embeddings") or 2048)


class MLXBackend:
    """One loaded model plus the KV cache of the last prompt and reply."""

    name = "mlx"
    # MLX's streams belong to the thread that made them (an array made on one cannot be
    # evaluated on another: "There is no Stream(cpu, 0) in current thread"), so the
    # runner computes every MLX request on its main thread, background ones included.
    thread_bound = True

    def __init__(self, model: Module, tokenizer: TextTokenizer, *, n_ctx: int) -> None:
        self._model: Any = model
        self._tokenizer = tokenizer
        self._n_ctx = n_ctx
        self._cache: list[Any] = make_prompt_cache(model)
        self._cached: list[int] = []  # the tokens whose keys and values are in the cache
        self._numbers = itertools.count(1)
        self._active = 0  # the generation that owns the cache: it alone may go on
        # Queue the next step while the caller handles a token: a win on a GPU, but on
        # a CPU the background evaluation competes with the work (~25% slower).
        self._pipeline = mx.default_device().type == mx.DeviceType.gpu
        self.last_reused_tokens = 0  # prompt tokens the last generate() took from the cache

    def context_length(self) -> int:
        return self._n_ctx

    def chat_template(self) -> str | None:
        return self._tokenizer.chat_template

    def special_tokens(self) -> dict[str, str]:
        return self._tokenizer.special_tokens()

    def tokenize(self, text: str) -> list[int]:
        return self._tokenizer.encode(text)

    def grammar_tokenizer(self) -> LLTokenizer:
        from daemon.engine.structured import tokenizer_from_hf

        return tokenizer_from_hf(self._tokenizer.tokenizer, self._tokenizer.eog_ids)

    def close(self) -> None:
        self._cache, self._cached = [], []
        self._model = None
        mx.clear_cache()

    def generate(
        self, prompt: list[int], sampling: Sampling, mask: Mask | None = None
    ) -> Iterator[Token]:
        if not prompt:
            raise InvalidParams("the prompt is empty")
        if len(prompt) >= self._n_ctx:
            raise ContextTooLong(
                f"the prompt has {len(prompt)} tokens; the context holds {self._n_ctx}",
                tokens=len(prompt),
                context=self._n_ctx,
            )
        return self._generate(list(prompt), sampling, mask)

    def suspend(self) -> Suspended:
        """Set the generation in progress aside with its cache objects; the next one gets
        a copy of that cache, so it can reuse the prefix it shares (the system prompt,
        say: without it an interactive request's prefill took twice as long). Its RNG
        key, penalty window and next logits are the generator's own and wait in it."""
        suspended = Suspended(self._cache, self._cached, self._active, self.last_reused_tokens)
        copy = _copy_of(self._model, self._cache)
        self._cache, self._cached = copy or make_prompt_cache(self._model), []
        if copy is not None:
            self._cached = list(suspended.cached)
        self._active = 0
        return suspended

    def resume(self, suspended: object) -> None:
        """Give a suspended generation its cache back (the cache of whatever ran meanwhile
        is dropped: the next prompt will not share much with it)."""
        assert isinstance(suspended, Suspended)
        self._cache, self._cached = suspended.cache, suspended.cached
        self._active, self.last_reused_tokens = suspended.generation, suspended.reused

    def _generate(
        self, prompt: list[int], sampling: Sampling, mask: Mask | None
    ) -> Iterator[Token]:
        generation = self._active = next(self._numbers)
        seed = sampling.seed if sampling.seed is not None else secrets.randbits(63)
        key = mx.random.key(seed)
        decoder = self._tokenizer.decoder(prompt)
        penalize = _penalty(sampling)
        made: list[int] = []  # generated so far: the penalty's window, as llama.cpp's
        try:
            logits = self._prefill(prompt)
            while generation == self._active:  # a newer generate() ends this one
                if penalize is not None and made:
                    logits = penalize(mx.array(made[-sampling.repeat_last_n :]), logits[None])[0]
                if mask is not None:
                    allowed = mx.array(mask(logits.shape[-1]))
                    logits = mx.where(allowed, logits, -mx.inf)
                key, subkey = mx.random.split(key)
                token = _sample(logits, sampling, subkey).item()
                assert isinstance(token, int)
                if token in self._tokenizer.eog_ids:
                    return
                text = decoder.add(token)
                made.append(token)
                if len(self._cached) >= self._n_ctx:
                    yield Token(token, text)
                    return
                logits = self._forward([token])  # the cache now holds `token`
                if self._pipeline:
                    mx.async_eval(logits)  # type: ignore[no-untyped-call]
                yield Token(token, text)
        except BaseException as exc:
            # At a yield (GeneratorExit: the caller stopped) the cache is consistent;
            # anywhere else it may be half-updated, so it is dropped.
            if not isinstance(exc, GeneratorExit) and generation == self._active:
                self._reset()
            raise

    def _prefill(self, prompt: list[int]) -> mx.array:
        """Reuse the cached prefix, run the rest of the prompt, return the last logits."""
        reuse = 0
        limit = min(len(self._cached), len(prompt) - 1)  # at least one token must run
        while reuse < limit and self._cached[reuse] == prompt[reuse]:
            reuse += 1
        if reuse < len(self._cached):
            if not can_trim_prompt_cache(self._cache):
                self._reset()
                reuse = 0
            else:
                trim_prompt_cache(self._cache, len(self._cached) - reuse)
                del self._cached[reuse:]
        self.last_reused_tokens = reuse
        rest = prompt[reuse:]
        for start in range(0, len(rest) - 1, PREFILL_CHUNK):
            chunk = rest[start : min(start + PREFILL_CHUNK, len(rest) - 1)]
            self._model(mx.array(chunk)[None], cache=self._cache)
            # Evaluating only the cache skips the vocabulary projection of every
            # prompt token: just the last token's logits are ever used.
            mx.eval([c.state for c in self._cache])
            self._cached.extend(chunk)
        return self._forward(rest[-1:])

    def _forward(self, tokens: list[int]) -> mx.array:
        logits: mx.array = self._model(mx.array(tokens)[None], cache=self._cache)
        self._cached.extend(tokens)
        return logits[0, -1, :]

    def _reset(self) -> None:
        """Forget the cache after an error left it in an unknown state."""
        self._cache = make_prompt_cache(self._model)
        self._cached = []


def _copy_of(model: Any, cache: list[Any]) -> list[Any] | None:
    """A cache with the same keys and values that shares no array object with ``cache``:
    KVCache writes into its arrays in place (``keys[..., i:j, :] = …``), but a write to
    a slice of them makes new data, as MLX never writes into a buffer another array
    holds. None for other kinds of cache (rotating, quantized…): the next request then
    starts empty."""
    from mlx_lm.models.cache import KVCache

    if not all(type(c) is KVCache for c in cache):
        return None
    copy = make_prompt_cache(model)
    for new, old in zip(copy, cache, strict=True):
        if old.keys is not None and type(new) is KVCache:
            n = old.offset
            new.keys, new.values, new.offset = old.keys[..., :n, :], old.values[..., :n, :], n
    return copy


@dataclass
class Suspended:
    """A generation set aside (see MLXBackend.suspend)."""

    cache: list[Any]
    cached: list[int]
    generation: int
    reused: int


def _penalty(sampling: Sampling) -> Any:
    """mlx-lm's repetition penalty (llama.cpp's formula), or None when it is off."""
    if sampling.repeat_penalty == 1.0 or sampling.repeat_last_n <= 0:
        return None
    return make_repetition_penalty(sampling.repeat_penalty, sampling.repeat_last_n)


def _sample(logits: mx.array, sampling: Sampling, key: mx.array) -> mx.array:
    """Greedy at temperature 0; else the llama.cpp backend's chain: top-k, min-p, top-p."""
    if sampling.temperature <= 0:
        return mx.argmax(logits, axis=-1)
    logprobs = (logits - mx.logsumexp(logits, keepdims=True))[None]
    if logprobs.shape[-1] > TOP_K:
        logprobs = apply_top_k(logprobs, TOP_K)
    logprobs = apply_min_p(logprobs, MIN_P)
    if 0 < sampling.top_p < 1:
        logprobs = apply_top_p(logprobs, sampling.top_p)
    return mx.random.categorical(logprobs[0] * (1 / sampling.temperature), key=key)
