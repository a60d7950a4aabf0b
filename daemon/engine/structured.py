"""Structured output: answers held to a JSON Schema, the same way on every engine.

``options.format`` is ``"json"`` (any JSON object) or a JSON Schema. The daemon checks
the schema before anything is queued (:func:`check_schema`: is it a JSON Schema, can the
constraint engine enforce every keyword in it); the runner then owns one
:class:`Constraint` per request. Before each token the backend asks it which tokens may
come next and masks every other one out of the logits; after each token the runner
feeds it the token. The mask is computed in the runner, from the same grammar and the
same vocabulary bytes, so llama.cpp and MLX choose among the same tokens, and greedy
decoding stays deterministic.

The constraint engine is llguidance (docs/ARCHITECTURE.md says why, against
outlines-core and xgrammar). Its JSON is compact: ``", "`` and ``": "`` between items
and no other whitespace, so a small model cannot wander into endless newlines.

An answer either closes its JSON — then it is parsed, validated once more with
``jsonschema`` (cheap insurance against a gap in the grammar) and returned as
``result.json`` — or it ends with :class:`~daemon.errors.StructuredOutputFailed`.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from daemon.errors import InvalidParams, StructuredOutputFailed

if TYPE_CHECKING:  # imported where used: the daemon itself needs neither (only the runner)
    import numpy as np
    from llguidance import LLMatcher, LLTokenizer
    from numpy.typing import NDArray

MAX_SCHEMA_BYTES = 64 << 10  # compiling takes up to ~0.2 s at this size: bounded before it runs
MAX_SCHEMA_DEPTH = 64  # JSON nesting: jsonschema's check recurses, and would overflow
ANY_OBJECT: dict[str, Any] = {"type": "object"}  # what format "json" stands for
# Compact JSON with the separators models mostly saw in training; no free whitespace.
_COMPILE = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}


def schema_of(value: Any) -> dict[str, Any]:
    """``options.format`` → the JSON Schema it stands for (shape and size only)."""
    if value == "json":
        return dict(ANY_OBJECT)
    if not isinstance(value, dict):
        raise InvalidParams(
            'options.format must be "json" (any JSON object) or a JSON Schema object',
            field="format",
        )
    size = len(json.dumps(value, ensure_ascii=False).encode())
    if size > MAX_SCHEMA_BYTES:
        raise InvalidParams(
            f"options.format is a schema of {size} bytes; at most {MAX_SCHEMA_BYTES} are "
            "accepted. Use $defs and $ref for repeated parts, or split the task",
            field="format",
            limit=MAX_SCHEMA_BYTES,
        )
    depth = _depth(value)
    if depth > MAX_SCHEMA_DEPTH:
        raise InvalidParams(
            f"options.format is nested {depth} levels deep; at most {MAX_SCHEMA_DEPTH} are "
            "accepted. Use $defs and $ref for deep or repeated parts",
            field="format",
            limit=MAX_SCHEMA_DEPTH,
        )
    return value


def _depth(value: Any) -> int:
    """How deeply a JSON value nests (a scalar: 0), without recursion."""
    deepest, pending = 0, [(value, 0)]
    while pending:
        item, level = pending.pop()
        children = (
            item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        )
        if children is not None:
            deepest = max(deepest, level + 1)
            pending.extend((child, level + 1) for child in children)
    return deepest


def check_schema(schema: dict[str, Any]) -> None:
    """Refuse, before any generation, a schema that is not one or that cannot be enforced.

    The message names the part: jsonschema's path for a malformed schema, llguidance's
    word for a keyword it does not implement (``uniqueItems``, ``not``, …)."""
    from jsonschema.exceptions import SchemaError
    from jsonschema.validators import validator_for
    from llguidance import LLMatcher

    try:
        validator_for(schema).check_schema(schema)
    except SchemaError as exc:
        raise InvalidParams(
            f"options.format is not a valid JSON Schema: {exc.message} (at {exc.json_path})",
            field="format",
            path=exc.json_path,
        ) from None
    failed, messages = LLMatcher.validate_grammar_with_warnings(_grammar(schema))
    if failed:
        raise unsupported(messages[0])


def unsupported(why: str) -> InvalidParams:
    why = why.strip()[:500]
    return InvalidParams(
        f"options.format cannot be enforced: {why}. Supported: objects, arrays, strings "
        "(enum, const, pattern, minLength/maxLength, format), numbers and integers "
        "(minimum/maximum, exclusive bounds, multipleOf), booleans, null, required, "
        "additionalProperties, anyOf/oneOf/allOf, $ref within the schema",
        field="format",
        unsupported=why,
    )


def _grammar(schema: dict[str, Any]) -> str:
    from llguidance import LLMatcher

    try:
        return LLMatcher.grammar_from_json_schema(schema, overrides=_COMPILE)  # type: ignore[arg-type]
    except ValueError as exc:
        raise unsupported(str(exc)) from None


class Constraint:
    """One request's matcher: which tokens may come next, and how far the JSON got.

    ``allowed`` is the backend's hook (called before each token is sampled), ``advance``
    the runner's (after each token). ``seconds`` adds up the time spent in both: the
    constraint's own cost per answer, reported as ``timings.constraint_ms``."""

    def __init__(self, tokenizer: LLTokenizer, schema: dict[str, Any]) -> None:
        from llguidance import LLMatcher
        from llguidance.numpy import allocate_token_bitmask

        self.schema = schema
        self.vocab_size = tokenizer.vocab_size
        self.matcher: LLMatcher = LLMatcher(tokenizer, _grammar(schema), log_level=0)
        if self.matcher.is_error():  # a limit only the real vocabulary shows
            raise unsupported(self.matcher.get_error())
        self._bits = allocate_token_bitmask(1, self.vocab_size)
        self.ends = list(tokenizer.eos_tokens)
        self.seconds = 0.0

    def allowed(self, width: int) -> NDArray[np.bool_]:
        """The tokens that may come next, among the first ``width`` (the logits' size).

        Never raises: llama.cpp calls it from C, where an exception would be lost. If the
        matcher fails, only end-of-generation is allowed, and ``value`` reports why."""
        import numpy as np
        from llguidance.numpy import fill_next_token_bitmask

        start = time.perf_counter()
        fill_next_token_bitmask(self.matcher, self._bits)
        mask = np.zeros(width, dtype=np.bool_)
        if self.matcher.is_error():
            mask[[t for t in self.ends if t < width]] = True
        else:
            bits = np.unpackbits(self._bits[0].view(np.uint8), bitorder="little")
            n = min(width, self.vocab_size)
            mask[:n] = bits[:n].view(np.bool_)
        self.seconds += time.perf_counter() - start
        return mask

    def advance(self, token: int) -> None:
        start = time.perf_counter()
        ok = self.matcher.consume_token(token)
        self.seconds += time.perf_counter() - start
        if not ok:  # the backend sampled a masked token: a bug, never the model's doing
            raise RuntimeError(f"token {token} broke the constraint: {self.matcher.get_error()}")

    @property
    def complete(self) -> bool:
        """The JSON is closed and nothing may follow it: generation can end here."""
        return self.matcher.is_stopped() and self.matcher.is_accepting()

    def value(self, text: str, finish: str, tokens: int) -> Any:
        """The finished answer's value, parsed and validated against the schema; or why
        there is none (``finish``: how generation ended, ``tokens``: how many it made)."""
        if self.matcher.is_error():
            raise StructuredOutputFailed(
                f"the constraint engine failed: {self.matcher.get_error()[:300]}",
                reason="constraint",
            )
        if finish == "repetition" or not self.matcher.is_accepting():  # (the guard cut it)
            raise incomplete("context" if finish == "stop" else finish, tokens)
        try:
            value = json.loads(text)
        except ValueError as exc:  # the grammar makes this impossible: insurance
            raise StructuredOutputFailed(
                f"the answer is not valid JSON ({exc}); this is a bug in Hearth",
                reason="invalid",
            ) from None
        error = next(iter(_validator(self.schema).iter_errors(value)), None)
        if error is not None:
            raise StructuredOutputFailed(
                f"the answer does not match the schema: {error.message} (at {error.json_path})",
                reason="invalid",
                path=error.json_path,
            )
        return value


def _validator(schema: dict[str, Any]) -> Any:
    from jsonschema import FormatChecker
    from jsonschema.validators import validator_for

    return validator_for(schema)(schema, format_checker=FormatChecker())


def incomplete(reason: str, tokens: int) -> StructuredOutputFailed:
    """The answer ended before its JSON closed: never passed on as if it were an answer."""
    why = {
        "length": f"it reached its limit of {tokens} tokens. Raise options.max_tokens, or ask "
        "for less (shorter strings: maxLength; fewer items: maxItems)",
        "repetition": "it kept repeating the same tokens. If the repeat is what you asked for, "
        "set options.loop_guard to false; else bound the schema (maxLength, maxItems)",
        "context": "the model's context filled up. Shorten the conversation",
    }.get(reason, "it stopped")
    return StructuredOutputFailed(
        f"the answer ended before its JSON was complete: {why}", reason=reason, tokens=tokens
    )


# -- the vocabulary, from each engine's own tokenizer ------------------------------------


def tokenizer_from_llamacpp(llm: Any) -> LLTokenizer:
    """llama.cpp's vocabulary as llguidance sees it: every token's bytes, via llama.cpp.

    The answer may end with the model's EOS or a known end-of-turn token: the MLX
    tokenizer's rule (llama.cpp also ends on FIM markers such as SmolLM2's <reponame>;
    allowing those too would let the two engines' masks differ). Building it walks the
    whole vocabulary (~1 s for 49k tokens): the runner keeps it."""
    import llama_cpp
    from llguidance.llamacpp import lltokenizer_from_vocab

    from daemon.engine.mlx_tokenizer import EOG_TEXTS

    vocab = llm._model.vocab
    count = int(llama_cpp.llama_vocab_n_tokens(vocab))
    eos = int(llama_cpp.llama_vocab_eos(vocab))
    ends = [
        t
        for t in range(count)
        if llama_cpp.llama_vocab_is_eog(vocab, t)
        and (t == eos or llama_cpp.llama_vocab_get_text(vocab, t).decode() in EOG_TEXTS)
    ]
    with warnings.catch_warnings():  # it calls a deprecated alias once per token
        warnings.simplefilter("ignore", DeprecationWarning)
        return lltokenizer_from_vocab(vocab, n_vocab=int(llm.n_vocab()), eos_token=ends)


def tokenizer_from_hf(tokenizer: Any, ends: Iterable[int]) -> LLTokenizer:
    """A `tokenizers` tokenizer (MLX: built from GGUF metadata or read from tokenizer.json).
    Logits wider than its vocabulary (padding rows) are masked out: see Constraint.allowed."""
    from llguidance import LLTokenizer

    return LLTokenizer(tokenizer.to_str(), eos_token=sorted(ends))
