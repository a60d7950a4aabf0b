"""The network policy: offline by default, allow-listed by caller and host, ask refuses."""

from __future__ import annotations

import json

import pytest

from daemon.egress.policy import Mode, Policy, Rule
from daemon.errors import EgressDenied, InvalidParams


def test_the_default_policy_is_offline_and_denies_everything() -> None:
    policy = Policy()
    assert policy.mode is Mode.OFFLINE
    assert not policy.decide("models.pull", "huggingface.co").allowed


def test_offline_denies_even_allow_listed_hosts_and_says_how_to_go_online() -> None:
    policy = Policy().allow("huggingface.co", "models.pull")
    with pytest.raises(EgressDenied) as denied:
        policy.check("models.pull", "huggingface.co")
    assert "hearth net mode allow-listed" in denied.value.message
    assert "hearth net allow huggingface.co --for models.pull" in denied.value.message
    assert denied.value.data == {
        "caller": "models.pull",
        "host": "huggingface.co",
        "mode": "offline",
    }


def test_allow_listed_allows_only_the_named_caller_and_host() -> None:
    policy = Policy(Mode.ALLOW_LISTED).allow("huggingface.co", "models.pull")
    decision = policy.check("models.pull", "huggingface.co")
    assert decision.allowed and decision.rule == "huggingface.co for models.pull"
    assert not policy.decide("remote.chat", "huggingface.co").allowed
    assert not policy.decide("models.pull", "example.com").allowed
    with pytest.raises(EgressDenied, match=r"hearth net allow example\.com --for remote\.chat"):
        policy.check("remote.chat", "example.com")


def test_a_star_caller_rule_allows_every_caller_for_that_host() -> None:
    policy = Policy(Mode.ALLOW_LISTED).allow("api.openai.com", "*")
    assert policy.decide("remote.chat", "api.openai.com").allowed
    assert policy.decide("plugin:weather", "api.openai.com").allowed
    assert not policy.decide("remote.chat", "openai.com").allowed


def test_a_wildcard_host_matches_subdomains_but_not_the_apex_or_lookalikes() -> None:
    policy = Policy(Mode.ALLOW_LISTED).allow("*.hf.co", "models.pull")
    assert policy.decide("models.pull", "cas-bridge.xethub.hf.co").allowed
    assert not policy.decide("models.pull", "hf.co").allowed
    assert not policy.decide("models.pull", "evilhf.co").allowed
    assert not policy.decide("models.pull", "hf.co.evil.com").allowed


def test_hosts_match_whatever_their_case_or_trailing_dot() -> None:
    policy = Policy(Mode.ALLOW_LISTED).allow("HuggingFace.co.", "models.pull")
    assert policy.rules == (Rule("huggingface.co", "models.pull"),)
    assert policy.decide("models.pull", "HUGGINGFACE.CO.").allowed


def test_ask_mode_passes_allow_listed_calls_and_refuses_the_rest_saying_no_one_can_be_asked() -> (
    None
):
    policy = Policy(Mode.ASK).allow("huggingface.co", "models.pull")
    assert policy.decide("models.pull", "huggingface.co").allowed
    with pytest.raises(EgressDenied, match="'ask' and no one can be asked") as denied:
        policy.check("remote.chat", "api.example.com")
    assert "hearth net allow api.example.com --for remote.chat" in denied.value.message


def test_allow_and_revoke_return_new_policies_and_leave_the_old_one_alone() -> None:
    offline = Policy()
    online = offline.with_mode("allow-listed").allow("huggingface.co", "models.pull")
    assert offline == Policy()
    assert online.allow("huggingface.co", "models.pull") == online  # no duplicate rules
    revoked = online.revoke("huggingface.co", "models.pull")
    assert revoked.rules == () and not revoked.decide("models.pull", "huggingface.co").allowed


def test_a_policy_survives_a_round_trip_through_json() -> None:
    policy = (
        Policy(Mode.ALLOW_LISTED)
        .allow("huggingface.co", "models.pull")
        .allow("*.hf.co", "models.pull")
        .allow("192.168.1.20", "remote.chat")
    )
    stored = json.loads(json.dumps(policy.to_dict()))
    assert stored["mode"] == "allow-listed"
    assert Policy.from_dict(stored) == policy


@pytest.mark.parametrize(
    "stored",
    [
        {"version": 1, "mode": "online", "rules": []},
        {"version": 2, "mode": "offline", "rules": []},
        {"version": 1, "mode": "allow-listed", "rules": [{"host": "evil.com/path", "caller": "*"}]},
        {"version": 1, "mode": "allow-listed", "rules": [{"host": "*", "caller": "*"}]},
        {
            "version": 1,
            "mode": "allow-listed",
            "rules": [{"host": "a.com", "caller": "Bad Caller"}],
        },
        {"version": 1, "mode": "allow-listed", "rules": ["a.com"]},
    ],
)
def test_a_malformed_stored_policy_is_refused_whole(stored: dict[str, object]) -> None:
    with pytest.raises(InvalidParams):
        Policy.from_dict(stored)
