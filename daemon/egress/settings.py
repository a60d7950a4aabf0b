"""The network settings the user chose: the policy, an optional remote model server and
an optional proxy.

Kept as JSON (``network.json`` in the config dir, 0600) and loaded at startup. A file
that cannot be read leaves Hearth offline — never looser than what the user set — and
is not overwritten until the user changes a setting. The remote server's API key is a
secret and lives in the secret store, never here.

The file is the user's, but so is every process they run, a compromised model runner
among them: so the SHA-256 of what the daemon last wrote is kept in the secret store,
and a file that does not match (edited, replaced, an older copy put back) is not used:
Hearth stays offline and says why until the user sets the network again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from daemon.egress.gateway import parse_url
from daemon.egress.policy import Policy
from daemon.egress.secrets import Secrets
from daemon.egress.store import write_private
from daemon.errors import InvalidParams

DIGEST = "network-settings"  # the secret holding the SHA-256 of network.json


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


def check_proxy(url: str) -> str:
    """An http(s)://host:port proxy address without credentials, or InvalidParams."""
    parsed = parse_url(url)
    if parsed.path not in ("", "/") or parsed.query or parsed.fragment:
        raise InvalidParams("a proxy is an address like http://proxy.example:3128, no path")
    return f"{parsed.scheme}://{parsed.netloc.decode('ascii')}"


@dataclass(frozen=True)
class NetworkSettings:
    policy: Policy = field(default_factory=Policy)
    remote: Remote | None = None
    proxy: str | None = None  # the only proxy Hearth uses; the environment's are ignored

    def to_dict(self) -> dict[str, Any]:
        remote = {"url": self.remote.url, "model": self.remote.model} if self.remote else None
        return {**self.policy.to_dict(), "remote": remote, "proxy": self.proxy}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NetworkSettings:
        remote, proxy = data.get("remote"), data.get("proxy")
        if remote is not None and not isinstance(remote, dict):
            raise InvalidParams("remote must be an object {url, model}")
        if proxy is not None and not isinstance(proxy, str):
            raise InvalidParams("proxy must be a URL or null")
        return cls(
            Policy.from_dict(data),
            Remote(str(remote.get("url")), str(remote.get("model"))) if remote else None,
            check_proxy(proxy) if proxy else None,
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


def save_settings(path: Path, settings: NetworkSettings, secrets: Secrets | None) -> None:
    """Write the file, its digest first (a crash between them leaves Hearth offline)."""
    data = json.dumps(settings.to_dict(), indent=2).encode() + b"\n"
    if secrets is not None:
        secrets.put(DIGEST, hashlib.sha256(data).digest())
    write_private(path, data)


def check_settings(
    path: Path, loaded: NetworkSettings, problem: str | None, secrets: Secrets
) -> tuple[NetworkSettings, str | None]:
    """``loaded`` if ``path`` is what the daemon last wrote; otherwise the defaults
    (offline) and why."""
    try:
        data: bytes | None = path.read_bytes()
    except FileNotFoundError:
        data = None
    stored = secrets.get(DIGEST)
    if stored is None and data is None:
        return loaded, problem
    if data is not None and stored == hashlib.sha256(data).digest():
        return loaded, problem
    how = "was deleted" if data is None else "was written" if stored is None else "was changed"
    return NetworkSettings(), (
        f"{path} {how} outside Hearth (or an older copy was put back), so it is not used: "
        "Hearth stays offline, with no remote server, until you set the network again "
        "(`hearth net mode …`)"
    )
