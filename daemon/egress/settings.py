"""The network settings the user chose: the policy, and an optional remote model server.

Kept as JSON (``network.json`` in the config dir, 0600) and loaded at startup. A file
that cannot be read leaves Hearth offline — never looser than what the user set — and
is not overwritten until the user changes a setting. The remote server's API key is a
secret and lives in the secret store, never here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from daemon.egress.gateway import parse_url
from daemon.egress.policy import Policy
from daemon.egress.store import write_private
from daemon.errors import InvalidParams


@dataclass(frozen=True)
class Remote:
    """An OpenAI-compatible server for requests that ask for ``route: "remote"``."""

    url: str
    model: str

    def __post_init__(self) -> None:
        parsed = parse_url(self.url)
        if parsed.query or parsed.fragment:
            raise InvalidParams("the remote server URL may not have a query or fragment")
        if not self.model or len(self.model) > 200:
            raise InvalidParams("the remote model name must be 1 to 200 characters")


@dataclass(frozen=True)
class NetworkSettings:
    policy: Policy = field(default_factory=Policy)
    remote: Remote | None = None

    def to_dict(self) -> dict[str, Any]:
        remote = {"url": self.remote.url, "model": self.remote.model} if self.remote else None
        return {**self.policy.to_dict(), "remote": remote}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NetworkSettings:
        remote = data.get("remote")
        if remote is not None and not isinstance(remote, dict):
            raise InvalidParams("remote must be an object {url, model}")
        return cls(
            Policy.from_dict(data),
            Remote(str(remote.get("url")), str(remote.get("model"))) if remote else None,
        )


def load_settings(path: Path) -> tuple[NetworkSettings, str | None]:
    """The stored settings (defaults when there are none), and what was wrong if unreadable."""
    try:
        return NetworkSettings.from_dict(json.loads(path.read_bytes())), None
    except FileNotFoundError:
        return NetworkSettings(), None
    except (ValueError, InvalidParams) as exc:
        reason = exc.message if isinstance(exc, InvalidParams) else str(exc)
        return NetworkSettings(), f"{path} cannot be read ({reason}); staying offline"


def save_settings(path: Path, settings: NetworkSettings) -> None:
    write_private(path, json.dumps(settings.to_dict(), indent=2).encode() + b"\n")
