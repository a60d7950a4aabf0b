"""Who may reach which host: the network policy, decided before any DNS lookup.

Three modes, from strictest to loosest:

- ``offline`` (the default): every outbound call is refused, rules included.
- ``ask``: allow-listed calls pass; any other call would need the user's answer.
  With no UI to ask (CLI, headless daemon) it is refused with an error saying so.
- ``allow-listed``: a call passes only when a rule names its caller and host.

A policy is an immutable value: the daemon swaps the gateway's ``policy`` attribute
to change it, so a decision never sees a half-edited rule list.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from daemon.errors import EgressDenied, InvalidParams

FORMAT_VERSION = 1

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOSTNAME = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$")
_CALLER = re.compile(r"^[a-z0-9][a-z0-9_.:-]{0,63}$")


class Mode(StrEnum):
    OFFLINE = "offline"
    ASK = "ask"
    ALLOW_LISTED = "allow-listed"


def normalize_host(host: str) -> str:
    """Lower-case, without a trailing dot or IPv6 brackets: the form rules are matched in."""
    return host.strip().lower().rstrip(".").removeprefix("[").removesuffix("]")


def _check_host_pattern(pattern: str) -> str:
    host = normalize_host(pattern)
    bare = host.removeprefix("*.")
    try:
        ipaddress.ip_address(bare)
        is_ip = True
    except ValueError:
        is_ip = False
    if (is_ip and bare != host) or not (is_ip or _HOSTNAME.match(bare)):
        raise InvalidParams(
            f"{pattern!r} is not a host name: use e.g. 'huggingface.co', '*.hf.co' or an IP "
            "address (internationalized names in their xn-- form)",
            host=pattern,
        )
    return host


def _check_caller(caller: str) -> str:
    if caller != "*" and not _CALLER.match(caller):
        raise InvalidParams(
            f"{caller!r} is not a caller name: use e.g. 'models.pull' or '*' for every caller",
            caller=caller,
        )
    return caller


@dataclass(frozen=True)
class Rule:
    """Allow ``caller`` (or every caller: ``*``) to reach ``host``.

    ``*.example.com`` matches the subdomains of example.com, not example.com itself.
    """

    host: str
    caller: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "host", _check_host_pattern(self.host))
        object.__setattr__(self, "caller", _check_caller(self.caller))

    def matches(self, caller: str, host: str) -> bool:
        if self.caller not in ("*", caller):
            return False
        if self.host.startswith("*."):
            return host.endswith(self.host[1:])
        return host == self.host

    def __str__(self) -> str:
        return f"{self.host} for {self.caller}"


@dataclass(frozen=True)
class Decision:
    """The verdict on one call: ``allow`` or ``deny``, which rule allowed it, and why."""

    verdict: str
    rule: str | None
    reason: str

    @property
    def allowed(self) -> bool:
        return self.verdict == "allow"


@dataclass(frozen=True)
class Policy:
    mode: Mode = Mode.OFFLINE
    rules: tuple[Rule, ...] = field(default_factory=tuple)

    def decide(self, caller: str, host: str) -> Decision:
        """Judge a call on its caller and the host *name* in its URL (no lookup needed)."""
        host = normalize_host(host)
        if self.mode is Mode.OFFLINE:
            return Decision(
                "deny",
                None,
                f"{caller} may not reach {host}: Hearth is offline. To allow it: "
                f"`hearth net mode allow-listed` and `hearth net allow {host} --for {caller}`",
            )
        for rule in self.rules:
            if rule.matches(caller, host):
                return Decision("allow", str(rule), f"allowed by rule {rule}")
        if self.mode is Mode.ASK:
            return Decision(
                "deny",
                None,
                f"{caller} may not reach {host}: the network mode is 'ask' and no one can "
                f"be asked here. To allow it: `hearth net allow {host} --for {caller}`",
            )
        return Decision(
            "deny",
            None,
            f"{caller} may not reach {host}: no rule allows it. "
            f"To allow it: `hearth net allow {host} --for {caller}`",
        )

    def check(self, caller: str, host: str) -> Decision:
        """:meth:`decide`, raising :class:`EgressDenied` when the call may not go out."""
        decision = self.decide(caller, host)
        if not decision.allowed:
            raise EgressDenied(
                decision.reason,
                caller=caller,
                host=normalize_host(host),
                mode=str(self.mode),
            )
        return decision

    def with_mode(self, mode: str) -> Policy:
        return Policy(_parse_mode(mode), self.rules)

    def allow(self, host: str, caller: str) -> Policy:
        rule = Rule(host, caller)
        return self if rule in self.rules else Policy(self.mode, (*self.rules, rule))

    def revoke(self, host: str, caller: str) -> Policy:
        rule = Rule(host, caller)
        return Policy(self.mode, tuple(r for r in self.rules if r != rule))

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "mode": str(self.mode),
            "rules": [{"host": r.host, "caller": r.caller} for r in self.rules],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Policy:
        """Rebuild a stored policy; anything malformed is refused, never half-loaded."""
        if not isinstance(data, dict) or data.get("version") != FORMAT_VERSION:
            raise InvalidParams(f"not a version {FORMAT_VERSION} network policy", policy=data)
        rules = data.get("rules", [])
        if not isinstance(rules, list) or not all(
            isinstance(r, dict)
            and isinstance(r.get("host"), str)
            and isinstance(r.get("caller"), str)
            for r in rules
        ):
            raise InvalidParams("network policy rules must be {host, caller} objects", rules=rules)
        return cls(
            _parse_mode(data.get("mode")),
            tuple(dict.fromkeys(Rule(r["host"], r["caller"]) for r in rules)),
        )


def _parse_mode(mode: object) -> Mode:
    try:
        return Mode(str(mode))
    except ValueError:
        choices = ", ".join(m.value for m in Mode)
        raise InvalidParams(f"unknown network mode {mode!r}: use one of {choices}") from None
