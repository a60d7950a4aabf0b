"""The one interface every engine implements (llama.cpp, MLX).

A backend lives inside a runner subprocess, never in the daemon. It turns prompt
tokens into a stream of generated tokens; the runner around it owns chat templates,
stop strings, max tokens and cancellation, so every engine behaves the same. A
generation can be set aside between two tokens and resumed later, unchanged, so that
an interactive request need not wait for background work (issue 17).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import numpy as np
    from llguidance import LLTokenizer
    from numpy.typing import NDArray

# Which tokens may come next, among the first `width` (the size of the logits): called
# before each token is sampled when an answer is held to a format (engine/structured.py).
Mask = Callable[[int], "NDArray[np.bool_]"]


@dataclass(frozen=True)
class Sampling:
    temperature: float = 0.2  # small models wander when sampled hotter
    top_p: float = 0.9
    seed: int | None = None
    # Divides the logits of tokens among the last `repeat_last_n` generated ones (1.0: off).
    # The prompt is not counted, so a rewrite may copy the user's words. The daemon sends
    # its defaults (config.toml); a backend used on its own samples plainly.
    repeat_penalty: float = 1.0
    repeat_last_n: int = 64


@dataclass(frozen=True)
class Token:
    id: int
    text: str  # decoded text of this token; "" while a multi-byte character is incomplete


class Backend(Protocol):
    name: str

    def context_length(self) -> int: ...

    def chat_template(self) -> str | None:
        """The model's Jinja chat template, if it ships one."""
        ...

    def special_tokens(self) -> dict[str, str]:
        """bos_token / eos_token strings, for rendering the chat template."""
        ...

    def tokenize(self, text: str) -> list[int]:
        """Tokens of an already-templated prompt (special tokens parsed, no extra BOS)."""
        ...

    def generate(
        self, prompt: list[int], sampling: Sampling, mask: Mask | None = None
    ) -> Iterator[Token]:
        """Yield tokens until end-of-generation; the caller stops iterating to stop early.

        Reuses the KV cache of the longest prefix shared with the previous prompt. With a
        ``mask``, every token it does not allow gets a logit of -inf before sampling (a
        penalty cannot bring it back), so greedy decoding picks the best allowed token.
        """
        ...

    def grammar_tokenizer(self) -> LLTokenizer:
        """The vocabulary (every token's bytes, the end-of-generation tokens) for the
        constraint engine. Slow to build (~1 s): the runner builds it once, when needed."""
        ...

    def suspend(self) -> object:
        """Set the generation in progress aside (its KV cache and sampler state) so that
        other generations can run; returns it for ``resume``. Call it between tokens,
        with the generation's iterator not closed."""
        ...

    def resume(self, suspended: object) -> None:
        """Bring back a generation ``suspend`` set aside: its iterator then goes on with
        exactly the tokens it would have made had it never stopped. Whatever ran
        meanwhile leaves no trace in it (its KV cache may be given up)."""
        ...

    def close(self) -> None: ...


class BackendFactory(Protocol):
    def __call__(self, path: Path, *, n_ctx: int) -> Backend: ...
