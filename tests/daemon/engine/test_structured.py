"""The constraint engine's side of structured output, with the default model's real
vocabulary (49,152 tokens) and no model weights: schema checks, masks, the last check."""

from __future__ import annotations

import json
from typing import Any

import pytest

from daemon.engine.gguf import read_gguf
from daemon.engine.mlx_gguf import gguf_tokenizer
from daemon.engine.mlx_tokenizer import TextTokenizer
from daemon.engine.structured import (
    MAX_SCHEMA_BYTES,
    MAX_SCHEMA_DEPTH,
    Constraint,
    check_schema,
    schema_of,
    tokenizer_from_hf,
    tokenizer_from_llamacpp,
)
from daemon.errors import InvalidParams, StructuredOutputFailed
from tests.daemon.engine.conftest_mlx import default_gguf
from tests.daemon.engine.structured_cases import SCHEMAS

PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "maximum": 150}},
    "required": ["name", "age"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def text_tokenizer() -> TextTokenizer:
    return gguf_tokenizer(read_gguf(default_gguf(), keep_arrays=True))


@pytest.fixture(scope="module")
def vocabulary(text_tokenizer: TextTokenizer) -> Any:
    return tokenizer_from_hf(text_tokenizer.tokenizer, text_tokenizer.eog_ids)


def feed(constraint: Constraint, tokens: list[int]) -> None:
    for token in tokens:
        assert constraint.allowed(constraint.vocab_size)[token], token
        constraint.advance(token)


@pytest.mark.parametrize(
    ("schema", "named"),
    [
        ({"type": "array", "items": {"type": "integer"}, "uniqueItems": True}, "uniqueItems"),
        ({"not": {"type": "string"}}, "not"),
        ({"if": {"type": "string"}, "then": {"minLength": 2}}, "if"),
        ({"type": "array", "contains": {"type": "integer"}}, "contains"),
        ({"type": "object", "propertyNames": {"pattern": "^a"}}, "propertyNames"),
        ({"type": "object", "dependentRequired": {"a": ["b"]}}, "dependentRequired"),
        ({"type": "object", "unevaluatedProperties": False}, "unevaluatedProperties"),
        ({"$ref": "https://example.com/schema.json"}, "https://example.com/schema.json"),
        ({"$ref": "#/$defs/missing"}, "/$defs/missing"),
        ({"type": "string", "pattern": "^(?=a)a+$"}, "look-around"),
        ({"type": "string", "format": "credit-card"}, "Unknown format: credit-card"),
        ({"type": "integer", "minimum": 5, "maximum": 1}, "minimum (5) is greater than maximum"),
    ],
)
def test_a_schema_that_cannot_be_enforced_is_refused_naming_the_part(
    schema: dict[str, Any], named: str
) -> None:
    with pytest.raises(InvalidParams) as err:
        check_schema(schema)
    assert err.value.data["field"] == "format"
    assert named in err.value.data["unsupported"] and named in err.value.message


def test_a_malformed_schema_is_refused_with_where_it_is_wrong() -> None:
    with pytest.raises(InvalidParams) as err:
        check_schema({"type": "object", "properties": {"a": {"type": "strin"}}})
    assert err.value.data["path"] == "$.properties.a.type"
    assert "not a valid JSON Schema" in err.value.message


def test_a_schema_nested_too_deep_is_refused_before_it_is_checked() -> None:
    deep = json.loads('{"type":"object","properties":{"a":' * 200 + "{}" + "}}" * 200)
    with pytest.raises(InvalidParams) as err:
        schema_of(deep)  # jsonschema's own check would overflow Python's stack on this one
    assert err.value.data["limit"] == MAX_SCHEMA_DEPTH and "401 levels deep" in err.value.message
    ok = json.loads('{"type":"object","properties":{"a":' * 16 + "{}" + "}}" * 16)
    check_schema(schema_of(ok))


def test_a_schema_too_large_is_refused_before_it_is_compiled() -> None:
    big = {"enum": [f"choice number {i:06}" for i in range(MAX_SCHEMA_BYTES // 16)]}
    with pytest.raises(InvalidParams) as err:
        schema_of(big)
    assert err.value.data["limit"] == MAX_SCHEMA_BYTES and "bytes" in err.value.message


def test_format_json_means_any_object_and_other_values_are_refused() -> None:
    assert schema_of("json") == {"type": "object"}
    for wrong in ("xml", 3, ["json"], True):
        with pytest.raises(InvalidParams, match='"json"'):
            schema_of(wrong)


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_every_schema_of_the_matrix_is_accepted(name: str) -> None:
    check_schema(SCHEMAS[name])


def test_llama_cpp_and_the_gguf_tokenizer_give_the_same_vocabulary(vocabulary: Any) -> None:
    import llama_cpp

    llm = llama_cpp.Llama(str(default_gguf()), vocab_only=True, verbose=False)
    try:
        theirs = tokenizer_from_llamacpp(llm)
    finally:
        llm.close()
    assert theirs.vocab_size == vocabulary.vocab_size == 49152
    assert sorted(theirs.eos_tokens) == sorted(vocabulary.eos_tokens) == [0, 2]
    for token in range(vocabulary.vocab_size):
        assert theirs.decode_bytes([token]) == vocabulary.decode_bytes([token]), token


def test_the_mask_allows_only_tokens_that_continue_the_json(
    vocabulary: Any, text_tokenizer: TextTokenizer
) -> None:
    constraint = Constraint(vocabulary, PERSON)
    first = constraint.allowed(vocabulary.vocab_size)
    starts = {vocabulary.decode_bytes([int(t)]) for t in first.nonzero()[0]}
    assert starts and all(piece.startswith(b"{") for piece in starts)
    assert not first[0] and not first[2]  # no end of answer before the JSON
    feed(constraint, text_tokenizer.encode('{"name": "Ann", "age": 3'))
    after_digit = constraint.allowed(vocabulary.vocab_size)
    pieces = {vocabulary.decode_bytes([int(t)]) for t in after_digit.nonzero()[0]}
    assert b"}" in pieces and b"4" in pieces and b"," not in pieces and b" " not in pieces
    feed(constraint, text_tokenizer.encode("4}"))
    assert constraint.complete
    assert constraint.value('{"name": "Ann", "age": 34}', "stop", 12) == {"name": "Ann", "age": 34}
    assert constraint.seconds > 0


def test_a_wider_logit_row_than_the_vocabulary_has_its_extra_tokens_masked(
    vocabulary: Any,
) -> None:
    mask = Constraint(vocabulary, PERSON).allowed(vocabulary.vocab_size + 64)
    assert len(mask) == vocabulary.vocab_size + 64 and not mask[vocabulary.vocab_size :].any()


def test_an_answer_cut_before_its_json_closed_is_an_error_not_a_value(
    vocabulary: Any, text_tokenizer: TextTokenizer
) -> None:
    constraint = Constraint(vocabulary, PERSON)
    feed(constraint, text_tokenizer.encode('{"name": "An'))
    with pytest.raises(StructuredOutputFailed) as err:
        constraint.value('{"name": "An', "length", 5)
    assert err.value.data == {"reason": "length", "tokens": 5}
    assert "limit of 5 tokens" in err.value.message and "max_tokens" in err.value.message


def test_the_last_check_refuses_a_value_the_schema_does_not_allow(
    vocabulary: Any, text_tokenizer: TextTokenizer
) -> None:
    """Insurance behind the mask: what reaches the client is validated by jsonschema."""
    constraint = Constraint(vocabulary, PERSON)
    feed(constraint, text_tokenizer.encode('{"name": "Ann", "age": 34}'))
    with pytest.raises(StructuredOutputFailed) as err:
        constraint.value('{"name": "Ann", "age": 340}', "stop", 12)
    assert err.value.data["reason"] == "invalid" and err.value.data["path"] == "$.age"


def test_an_answer_the_context_cut_short_says_so_not_max_tokens() -> None:
    """With the real model, a long question in a 256-token context (llama.cpp's least):
    60 zeros cannot fit in what is left, and the error names the context (raising
    max_tokens would not help); a max_tokens that came first says so instead."""
    import io

    from daemon.engine.runner import Runner, load_backend

    zeros = {"type": "array", "items": {"const": 0}, "minItems": 60, "maxItems": 60}
    ask = "Sixty zeros, " + "please, " * 70
    backend = load_backend("llamacpp", default_gguf(), 256)
    try:
        for max_tokens, reason in ((400, "context"), (5, "length")):
            out = io.StringIO()
            Runner(backend, out).serve(
                {"rid": 1, "messages": [{"role": "user", "content": ask}],
                 "temperature": 0, "max_tokens": max_tokens, "loop_guard": False,
                 "format": zeros}
            )  # fmt: skip
            last = json.loads(out.getvalue().splitlines()[-1])
            assert last["event"] == "error" and last["kind"] == "structured_output_failed"
            assert last["data"]["reason"] == reason, last
            assert last["data"]["tokens"] < 100
    finally:
        backend.close()


def test_a_structured_answer_paused_for_other_work_resumes_with_its_matcher() -> None:
    """A background answer held to a schema, set aside after its first token while
    another (plain) answer runs, ends with the same JSON as when it runs uninterrupted:
    the format's matcher is part of what a pause keeps (engine/generation.py)."""
    import io

    from daemon.engine.runner import Runner, load_backend

    ask = {"rid": 1, "messages": [{"role": "user", "content": "Ann is 34. Who is she?"}],
           "temperature": 0, "max_tokens": 60, "format": PERSON,
           "priority": "background"}  # fmt: skip
    other = {"rid": 2, "messages": [{"role": "user", "content": "Say hello."}],
             "temperature": 0, "max_tokens": 20}  # fmt: skip
    backend = load_backend("llamacpp", default_gguf(), 1024)
    try:
        alone = io.StringIO()
        Runner(backend, alone).serve(ask)
        expected = json.loads(alone.getvalue().splitlines()[-1])
        assert expected["event"] == "done", expected

        out = io.StringIO()
        runner = Runner(backend, out)
        runner.pausing.add(1)  # as the command reader does when interactive work arrives
        runner.serve(ask)
        assert 1 in runner.paused
        runner.serve(other)
        runner.serve({"op": "resume", "rid": 1})
        events = [json.loads(line) for line in out.getvalue().splitlines()]
        order = [(e["event"], e.get("rid")) for e in events if e["event"] != "delta"]
        assert order == [("paused", 1), ("done", 2), ("done", 1)], order
        done = events[-1]
        assert done["result"]["json"] == expected["result"]["json"]
        assert done["result"]["text"] == expected["result"]["text"]
        assert done["result"]["timings"]["pauses"] == 1
    finally:
        backend.close()
