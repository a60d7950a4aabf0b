"""What a change of the network settings did, in words for the audit log.

Every change of the policy, the remote server, its API key or the proxy is an audit
entry (``phase: "policy"``): the log that proves what left the machine also shows who
opened the way, and when. ``loosens`` tells whether a change lets more out (such a
change is refused when it cannot be recorded; tightening never is).
"""

from __future__ import annotations

from dataclasses import dataclass

from daemon.egress.gateway import parse_url
from daemon.egress.policy import Mode
from daemon.egress.settings import NetworkSettings


@dataclass(frozen=True)
class Change:
    text: str
    host: str | None = None
    loosens: bool = True


def changes(before: NetworkSettings, after: NetworkSettings, key: str | None) -> list[Change]:
    """The changes from ``before`` to ``after``; ``key`` is what happened to the remote
    server's API key: "set", "deleted" or None (untouched)."""
    found: list[Change] = []
    old, new = before.policy, after.policy
    if old.mode != new.mode:
        loosens = new.mode is not Mode.OFFLINE  # any other mode lets allowed calls out
        found.append(Change(f"mode {old.mode} -> {new.mode}", loosens=loosens))
    for rule in new.rules:
        if rule not in old.rules:
            found.append(Change(f"allow {rule}", rule.host))
    for rule in old.rules:
        if rule not in new.rules:
            found.append(Change(f"revoke {rule}", rule.host, loosens=False))
    if before.remote != after.remote:
        if after.remote is None:
            found.append(Change("remote server forgotten", loosens=False))
        else:
            where = f"remote server {after.remote.url} (model {after.remote.model})"
            found.append(Change(where, _host(after.remote.url)))
    if key is not None:
        found.append(Change(f"remote API key {key}", loosens=key == "set"))
    if before.proxy != after.proxy:
        text = f"proxy {after.proxy}" if after.proxy else "proxy removed"
        found.append(Change(text, _host(after.proxy) if after.proxy else None, bool(after.proxy)))
    return found


def _host(url: str) -> str | None:
    return parse_url(url).host or None
