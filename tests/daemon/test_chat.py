"""Streaming chat and rewrite through the real daemon and the real default model."""

from __future__ import annotations

from typing import Any

import pytest

from daemon.client import Client
from daemon.errors import InvalidParams, ModelNotFound
from daemon.presets import BUILTIN

GREEDY = {"temperature": 0, "max_tokens": 48}


def collect(client: Client, method: str, params: dict[str, Any]) -> tuple[list[str], Any]:
    deltas, _, result = collect_counted(client, method, params)
    return deltas, result


def collect_counted(
    client: Client, method: str, params: dict[str, Any]
) -> tuple[list[str], list[int], Any]:
    """The deltas' texts, their token counts so far, and the result."""
    texts: list[str] = []
    counts: list[int] = []

    def on_delta(_: str, p: dict[str, Any]) -> None:
        texts.append(p["text"])
        counts.append(p["tokens"])

    result = client.call(method, params, on_delta)
    return texts, counts, result


def test_chat_streams_deltas_that_add_up_to_the_final_text(client: Client) -> None:
    deltas, counts, result = collect_counted(
        client,
        "chat",
        {"messages": [{"role": "user", "content": "Name three colours."}], "options": GREEDY},
    )
    assert len(deltas) > 3
    assert counts[0] == 1  # the first token goes out at once
    assert counts == sorted(set(counts))  # strictly increasing
    assert counts[-1] == result["tokens"]["completion"]
    assert "".join(deltas) == result["text"]
    assert result["text"].strip()
    assert result["finish_reason"] in ("stop", "length")
    assert result["tokens"]["prompt"] > 5
    assert 0 < result["tokens"]["completion"] <= 48
    assert result["timings"]["ttft_ms"] > 0 and result["timings"]["total_ms"] > 0


def test_chat_notifications_carry_the_request_id(client: Client) -> None:
    seen: list[tuple[str, Any]] = []
    rid = client.send("chat", {"messages": [{"role": "user", "content": "Hi"}], "options": GREEDY})
    client.wait(rid, lambda m, p: seen.append((m, p["id"])))
    assert seen and all(m == "chat.delta" and i == rid for m, i in seen)


def test_max_tokens_ends_with_finish_reason_length(client: Client) -> None:
    result = client.call(
        "chat",
        {
            "messages": [{"role": "user", "content": "Write a long story about a dragon."}],
            "options": {"temperature": 0, "max_tokens": 5},
        },
    )
    assert result["finish_reason"] == "length"
    assert result["tokens"]["completion"] == 5


def test_same_seed_gives_same_sampled_answer(client: Client) -> None:
    params = {
        "messages": [{"role": "user", "content": "Tell me a fun fact."}],
        "options": {"temperature": 1.0, "seed": 42, "max_tokens": 24},
    }
    assert client.call("chat", params)["text"] == client.call("chat", params)["text"]


@pytest.mark.parametrize("preset", sorted(BUILTIN))
def test_each_builtin_preset_rewrites_without_preamble(client: Client, preset: str) -> None:
    text = "i has went to the store yesterday and buyed three apple, they was very good"
    deltas, result = collect(
        client, "rewrite", {"text": text, "preset": preset, "options": {"max_tokens": 80}}
    )
    out = result["text"]
    assert out and out == out.strip()
    assert "".join(deltas) == out
    assert not out.lower().startswith(("here is", "here's", "sure", "certainly"))
    assert out[0] not in "\"'“"


def test_repeated_preset_reuses_its_cached_prefix(client: Client) -> None:
    first = client.call("rewrite", {"text": "hello there friend", "preset": "concise"})
    second = client.call("rewrite", {"text": "see you tomorrow", "preset": "concise"})
    assert first["text"] and second["text"]
    # The instruction's tokens (beyond the template's fixed head) came from the KV cache.
    assert second["cached_tokens"] >= 25


def test_unknown_preset_is_an_invalid_params_error_listing_presets(client: Client) -> None:
    with pytest.raises(InvalidParams) as err:
        client.call("rewrite", {"text": "x", "preset": "nope"})
    assert "proofread" in err.value.message


def test_user_presets_from_config_are_offered(client: Client) -> None:
    names = [p["name"] for p in client.call("rewrite.presets")["presets"]]
    assert set(BUILTIN) <= set(names)


def test_unknown_model_is_a_typed_error(client: Client) -> None:
    with pytest.raises(ModelNotFound):
        client.call("chat", {"model": "nope", "messages": [{"role": "user", "content": "x"}]})


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"messages": []},
        {"messages": [{"role": "robot", "content": "x"}]},
        {"messages": [{"role": "user", "content": "x"}], "options": {"temperature": 9}},
        {"messages": [{"role": "user", "content": "x"}], "options": {"max_tokens": "a"}},
        {"messages": [{"role": "user", "content": "x"}], "options": {"bogus": 1}},
    ],
)
def test_malformed_chat_params_are_rejected(client: Client, params: dict[str, Any]) -> None:
    with pytest.raises(InvalidParams):
        client.call("chat", params)
