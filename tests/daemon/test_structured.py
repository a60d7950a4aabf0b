"""options.format through the real daemon, runner and default model: result.json next to
the text, and the typed errors (refused schemas before any generation, answers cut short).

The full schema × prompt matrix on both engines is tests/daemon/engine/test_structured_matrix.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from daemon.client import Client
from daemon.errors import InvalidParams, StructuredOutputFailed
from tests.conftest import Daemon
from tests.daemon.engine.structured_cases import SCHEMAS

ENGINES = ["llamacpp", "mlx"]
ASK = [{"role": "user", "content": "Ann is 34 years old. Give her name and age."}]


def options(engine: str = "llamacpp", **extra: Any) -> dict[str, Any]:
    return {"engine": engine, "temperature": 0, "max_tokens": 64, **extra}


@pytest.mark.parametrize("engine", ENGINES)
def test_a_chat_held_to_a_schema_returns_its_value_next_to_the_text(
    client: Client, engine: str
) -> None:
    deltas: list[str] = []
    result = client.call(
        "chat",
        {"messages": ASK, "store": False, "options": options(engine, format=SCHEMAS["flat"])},
        lambda _, p: deltas.append(p["text"]),
    )
    assert result["finish_reason"] == "stop" and result["engine"] == engine
    assert "".join(deltas) == result["text"]
    assert json.loads(result["text"]) == result["json"]
    jsonschema.validate(result["json"], SCHEMAS["flat"])
    assert result["text"].startswith('{"name": "')  # compact JSON: ", " and ": " only
    assert result["timings"]["constraint_ms"] > 0


def test_format_json_gives_a_json_object(client: Client) -> None:
    ask = [{"role": "user", "content": "Describe a cat as a JSON object."}]
    result = client.call(
        "chat", {"messages": ask, "store": False, "options": options(format="json", max_tokens=200)}
    )
    assert isinstance(result["json"], dict) and json.loads(result["text"]) == result["json"]


def test_without_format_the_result_has_no_json(client: Client) -> None:
    params = {"messages": ASK, "store": False, "options": options(max_tokens=4)}
    result = client.call("chat", params)
    assert "json" not in result and "constraint_ms" not in result["timings"]


def test_an_unsupported_schema_is_refused_before_anything_runs(fresh_daemon: Daemon) -> None:
    schema = {"type": "array", "items": {"type": "integer"}, "uniqueItems": True}
    with fresh_daemon.client() as c:
        with pytest.raises(InvalidParams) as err:
            c.call("chat", {"messages": ASK, "options": options(format=schema)})
        assert err.value.data["field"] == "format"
        assert "uniqueItems" in err.value.data["unsupported"]
        status = c.call("status")
    assert status["runners"] == [] and status["queue"] == 0  # no model was even loaded


@pytest.mark.parametrize(
    ("fmt", "said"),
    [
        ({"type": "object", "properties": {"a": {"type": "strin"}}}, "$.properties.a.type"),
        ({"enum": [f"choice number {i:06}" for i in range(5000)]}, "bytes; at most 65536"),
        ("yaml", '"json"'),
    ],
)
def test_a_malformed_or_too_large_format_is_invalid_params(
    client: Client, fmt: Any, said: str
) -> None:
    with pytest.raises(InvalidParams, match=r"options\.format") as err:
        client.call("chat", {"messages": ASK, "options": options(format=fmt)})
    assert said in err.value.message and err.value.data["field"] == "format"


@pytest.mark.parametrize("engine", ENGINES)
def test_max_tokens_too_small_is_a_typed_error_not_broken_json(client: Client, engine: str) -> None:
    deltas: list[str] = []
    with pytest.raises(StructuredOutputFailed) as err:
        client.call(
            "chat",
            {"messages": ASK, "store": False,
             "options": options(engine, format=SCHEMAS["flat"], max_tokens=4)},
            lambda _, p: deltas.append(p["text"]),
        )  # fmt: skip
    assert err.value.data == {"reason": "length", "tokens": 4}
    assert "before its JSON was complete" in err.value.message
    assert "".join(deltas).startswith("{")  # what streamed was the start, never a result


def test_a_failed_structured_answer_is_not_stored(client: Client) -> None:
    before = client.call("conversations.list")["conversations"]
    with pytest.raises(StructuredOutputFailed):
        client.call("chat", {"messages": ASK, "options": options(format="json", max_tokens=3)})
    assert client.call("conversations.list")["conversations"] == before


def test_a_structured_answer_is_stored_as_its_json_text(client: Client) -> None:
    result = client.call("chat", {"messages": ASK, "options": options(format=SCHEMAS["flat"])})
    stored = client.call("conversations.get", {"id": result["conversation_id"]})
    assert stored["messages"][-1]["content"] == result["text"]


def test_a_cancelled_structured_answer_says_so_and_carries_no_value(client: Client) -> None:
    rid = client.send(
        "chat", {"messages": ASK, "store": False, "options": options(format="json", max_tokens=400)}
    )
    result = client.wait(rid, lambda _, p: client.cancel(rid))
    assert result["finish_reason"] == "cancelled" and "json" not in result


@pytest.mark.parametrize(
    ("method", "params", "field"),
    [
        ("chat", {"messages": ASK, "options": options(format="json", stop=["}"])}, "stop"),
        ("chat", {"messages": ASK, "route": "remote", "options": {"format": "json"}}, "format"),
        ("rewrite", {"text": "hi there", "preset": "proofread",
                     "options": {"format": "json"}}, "format"),
    ],
)  # fmt: skip
def test_format_is_refused_where_it_cannot_hold(
    client: Client, method: str, params: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidParams) as err:
        client.call(method, params)
    assert err.value.data["field"] == field


ZEROS = {"type": "array", "items": {"const": 0}, "minItems": 60, "maxItems": 60}


def test_a_structured_answer_that_repeats_is_refused_by_the_loop_guard_not_cut(
    client: Client,
) -> None:
    """The guard's cut would break the JSON: the answer ends as an error instead. 60 zeros
    repeat one block far past the guard's 96 tokens, so the guard must be turned off."""
    ask = [{"role": "user", "content": "Sixty zeros, please."}]
    with pytest.raises(StructuredOutputFailed) as err:
        client.call("chat", {"messages": ask, "store": False,
                             "options": options(format=ZEROS, max_tokens=400)})  # fmt: skip
    assert err.value.data["reason"] == "repetition" and "loop_guard" in err.value.message
    result = client.call(
        "chat",
        {"messages": ask, "store": False,
         "options": options(format=ZEROS, max_tokens=400, loop_guard=False)},
    )  # fmt: skip
    assert result["json"] == [0] * 60


def test_hearth_chat_format_prints_json_that_validates(daemon: Daemon, tmp_path: Path) -> None:
    schema = tmp_path / "person.json"
    schema.write_text(json.dumps(SCHEMAS["flat"]))
    args = ["chat", "--no-store", "--temperature", "0", "--format", f"@{schema}", ASK[0]["content"]]
    out = subprocess.run(
        [sys.executable, "-m", "daemon", *args],
        env=daemon.env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    jsonschema.validate(json.loads(out.stdout), SCHEMAS["flat"])
    bad = subprocess.run(
        [sys.executable, "-m", "daemon", "chat", "--format", "{type: object}", "hi"],
        env=daemon.env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert bad.returncode == 2 and "--format takes json, a JSON Schema or @FILE" in bad.stderr
    assert "Traceback" not in bad.stderr
