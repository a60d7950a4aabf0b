"""Every schema × prompt of structured_cases on llama.cpp and on MLX, greedy, through the
runner's real generate loop and the real default model.

Each answer must close its JSON and validate (checked here with jsonschema, apart from the
runner's own check). Both engines apply the same mask, so they choose among the same
tokens; they may still part at a near-tie: llama.cpp rounds activations to 8 bits on the
Q4_1 file (see test_mlx_parity). Where the token ids differ, the first step that differs
must be one where MLX's token scores within NEAR_TIE logits of llama.cpp's own choice,
in llama.cpp's own logits along the shared prefix; each such step is printed.

Measured 2026-12-01 (11 schemas x 3 prompts): 27 of 33 answers have the same tokens on
both engines. The other 6 part at near-ties, by (llama.cpp's logit for its own token
minus the one for MLX's): flat / "Describe a person." +0.04 ('E' / 'L', after 4 tokens),
pattern / "Make a ticket code." +0.05, numbers / "A cold, dry day." +0.12,
string_array / "Name some fruits." +0.02 (' ' then '["' / ' ["': the same text, other
tokens), optional_fields / "Tell me about Titanic." +0.17 ('"' / '",'), optional_fields /
"A funny film." +0.23. Every answer on both engines validated. The module took 6.6 min
on the shared 2-core machine (load ~7; 2.4 min of CPU), most of it MLX's ~5 tokens/s.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import jsonschema
import numpy as np
import pytest

from daemon.engine.backend import Backend, Mask, Sampling, Token
from daemon.engine.runner import Runner, load_backend
from daemon.engine.structured import Constraint
from tests.daemon.engine.conftest_mlx import default_gguf
from tests.daemon.engine.structured_cases import MAX_TOKENS, SCHEMAS, cases

NEAR_TIE = 1.0  # logits, as in test_mlx_parity
CASES = cases()
IDS = [f"{name}-{prompt[:24]}" for name, prompt in CASES]


class Recording:
    """A real backend that also keeps the prompt and the ids of the tokens it made."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.prompt: list[int] = []
        self.ids: list[int] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.backend, name)

    def generate(
        self, prompt: list[int], sampling: Sampling, mask: Mask | None = None
    ) -> Iterator[Token]:
        self.prompt, self.ids = list(prompt), []
        for token in self.backend.generate(prompt, sampling, mask):
            self.ids.append(token.id)
            yield token


@dataclass
class Run:
    prompt: list[int]
    ids: list[int]
    result: dict[str, Any] | None  # the runner's result, or None after an error event
    error: dict[str, Any] | None


class Engine:
    def __init__(self, name: str) -> None:
        self.backend = Recording(load_backend(name, default_gguf(), 2048))
        self.runner = Runner(self.backend, io.StringIO())  # type: ignore[arg-type]
        self.runs: dict[tuple[str, str], Run] = {}

    def run(self, name: str, prompt: str) -> Run:
        if (name, prompt) not in self.runs:
            out = io.StringIO()
            self.runner.out = out
            self.runner.generate(
                {"rid": 1, "messages": [{"role": "user", "content": prompt}], "temperature": 0,
                 "max_tokens": MAX_TOKENS, "format": SCHEMAS[name]}
            )  # fmt: skip
            last = json.loads(out.getvalue().splitlines()[-1])
            self.runs[name, prompt] = Run(
                self.backend.prompt,
                self.backend.ids,
                last.get("result"),
                last if last["event"] == "error" else None,
            )
        return self.runs[name, prompt]


@pytest.fixture(scope="module")
def llamacpp() -> Engine:
    return Engine("llamacpp")


@pytest.fixture(scope="module")
def mlx() -> Engine:
    pytest.importorskip("mlx.core", reason="the MLX engine is not installed")
    return Engine("mlx")


def check(run: Run, name: str) -> None:
    assert run.error is None, run.error
    assert run.result is not None and run.result["finish_reason"] == "stop"
    value = json.loads(run.result["text"])
    jsonschema.validate(value, SCHEMAS[name], format_checker=jsonschema.FormatChecker())
    assert run.result["json"] == value


@pytest.mark.parametrize(("name", "prompt"), CASES, ids=IDS)
def test_every_answer_on_llama_cpp_is_json_that_validates(
    llamacpp: Engine, name: str, prompt: str
) -> None:
    check(llamacpp.run(name, prompt), name)


@pytest.mark.parametrize(("name", "prompt"), CASES, ids=IDS)
def test_every_answer_on_mlx_is_json_that_validates(mlx: Engine, name: str, prompt: str) -> None:
    check(mlx.run(name, prompt), name)


@pytest.mark.parametrize(("name", "prompt"), CASES, ids=IDS)
def test_both_engines_give_the_same_answer_or_part_at_a_near_tie(
    llamacpp: Engine, mlx: Engine, name: str, prompt: str
) -> None:
    ours, theirs = llamacpp.run(name, prompt), mlx.run(name, prompt)
    assert ours.prompt == theirs.prompt  # the same template, the same tokens
    if ours.ids == theirs.ids:
        return
    pairs = zip(ours.ids, theirs.ids, strict=False)
    step = next((i for i, (a, b) in enumerate(pairs) if a != b), None)
    step = min(len(ours.ids), len(theirs.ids)) if step is None else step
    tokenizer = llamacpp.runner.grammar_tokenizer()
    ends = list(tokenizer.eos_tokens)  # an engine that ended there chose an end token
    mine = [ours.ids[step]] if step < len(ours.ids) else ends
    other = [theirs.ids[step]] if step < len(theirs.ids) else ends
    gap = _llama_cpp_gap(llamacpp, name, ours.prompt, theirs.ids[:step], mine, other)
    said = [tokenizer.decode_str(t[:1]) if t is not ends else "(end)" for t in (mine, other)]
    same_text = ours.result and theirs.result and ours.result["text"] == theirs.result["text"]
    print(f"\n{name} / {prompt!r}: the same first {step} tokens, then llama.cpp {said[0]!r}, "
          f"MLX {said[1]!r}: {gap:+.2f} logits apart in llama.cpp's logits"
          f"{' (the same text)' if same_text else ''}")  # fmt: skip
    assert abs(gap) < NEAR_TIE, (step, said, gap)


def _llama_cpp_gap(
    engine: Engine, name: str, prompt: list[int], prefix: list[int], mine: list[int],
    other: list[int],
) -> float:  # fmt: skip
    """llama.cpp's logit for its own choice minus the one for MLX's (for a list: the best
    of those end tokens) after ``prompt + prefix``, under the mask. The answer's tokens
    are evaluated one at a time, as when they were generated: in one batch, llama.cpp's
    8-bit activations round differently, enough to flip a near-tie."""
    llm = engine.backend.backend.llm
    constraint = Constraint(engine.runner.grammar_tokenizer(), SCHEMAS[name])
    llm.reset()
    llm.eval(prompt)
    for token in prefix:
        constraint.advance(token)
        llm.eval([token])
    # The last token's logits, straight from llama.cpp (Llama.scores is only kept with
    # logits_all, which the backend does not set).
    width = llm.n_vocab()
    logits = np.ctypeslib.as_array(llm._ctx.get_logits_ith(-1), shape=(width,)).copy()
    allowed = constraint.allowed(width)
    assert all(allowed[t] for t in mine + other), "a token the mask did not allow"
    assert logits.std() > 1, "no logits were read"
    return float(logits[mine].max() - logits[other].max())
