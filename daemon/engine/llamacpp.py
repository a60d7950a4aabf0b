"""The llama.cpp engine, over llama-cpp-python. Runs inside a runner process only."""

from __future__ import annotations

import codecs
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from daemon.engine.backend import Mask, Sampling, Token
from daemon.engine.cpu import omp_environment, usable_cpus

if TYPE_CHECKING:
    from llguidance import LLTokenizer


class LlamaCppBackend:
    name = "llamacpp"

    def __init__(self, path: Path, *, n_ctx: int) -> None:
        omp_environment(os.environ)  # before libgomp loads with llama_cpp
        import llama_cpp

        self._lib = llama_cpp
        threads = usable_cpus()  # until the runner picks per request (set_threads)
        self.llm = llama_cpp.Llama(
            model_path=str(path),
            n_ctx=n_ctx,
            n_threads=threads,
            n_threads_batch=threads,
            verbose=False,
        )
        self.last_reused_tokens = 0

    def set_threads(self, n: int) -> None:
        """Compute with ``n`` threads from the next token on, without reloading."""
        self._lib.llama_set_n_threads(self.llm.ctx, n, n)

    def context_length(self) -> int:
        return int(self.llm.n_ctx())

    def chat_template(self) -> str | None:
        return self.llm.metadata.get("tokenizer.chat_template")

    def special_tokens(self) -> dict[str, str]:
        model = self.llm._model
        return {
            "bos_token": model.token_get_text(model.token_bos()),
            "eos_token": model.token_get_text(model.token_eos()),
        }

    def tokenize(self, text: str) -> list[int]:
        return list(self.llm.tokenize(text.encode(), add_bos=False, special=True))

    def grammar_tokenizer(self) -> LLTokenizer:
        from daemon.engine.structured import tokenizer_from_llamacpp

        return tokenizer_from_llamacpp(self.llm)

    def generate(
        self, prompt: list[int], sampling: Sampling, mask: Mask | None = None
    ) -> Iterator[Token]:
        self.last_reused_tokens = _common_prefix(self.llm._input_ids[: self.llm.n_tokens], prompt)
        if sampling.seed is not None:
            self.llm.set_seed(sampling.seed)
        vocab = self.llm._model.vocab
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        greedy = sampling.temperature <= 0
        self.llm.last_n_tokens_size = (
            sampling.repeat_last_n
        )  # read when generate() builds its sampler
        stream = self.llm.generate(
            prompt,
            temp=0.0 if greedy else sampling.temperature,
            top_k=1 if greedy else 40,
            top_p=1.0 if greedy else sampling.top_p,
            min_p=0.0 if greedy else 0.05,
            repeat_penalty=sampling.repeat_penalty,
            logits_processor=None
            if mask is None
            else self._lib.LogitsProcessorList([_masking(mask)]),
        )
        try:
            for tok in stream:
                if self._lib.llama_vocab_is_eog(vocab, tok):
                    return
                piece = self.llm._model.detokenize([tok], special=False)
                yield Token(int(tok), decoder.decode(piece))
        finally:
            stream.close()

    def close(self) -> None:
        self.llm.close()


def _masking(mask: Mask) -> Any:
    """A logits processor: llama-cpp-python runs it first in its sampler chain, over
    every token's logit in id order."""

    def apply(_input_ids: Any, logits: Any) -> Any:
        return np.where(mask(len(logits)), logits, -np.inf)

    return apply


def _common_prefix(a: object, b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):  # type: ignore[call-overload]
        if int(x) != y:
            break
        n += 1
    return n
