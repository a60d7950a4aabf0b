"""``models.pull`` by catalog name: the pinned download for this platform, verified, recorded.

A GGUF entry is one file and goes through :func:`daemon.egress.install.pull_model`. An
MLX entry is a folder: the hub's file list at the pinned commit, every model file in it
(config, weights, tokenizer, template) fetched at that same commit into ``models/.pull/``,
each verified on its own (SHA-256 from LFS, or the git blob hash of small files), the
folder checked, then renamed into place in one step. A revision the catalog could not pin
(a branch) is resolved to a commit once, first, so every file comes from one commit.
What was fetched, at which commit, verified against what, goes to the provenance record.

With the user's consent for one download (``consent: true``: the client showed the size,
license and source and the user agreed), the pull runs through a gateway of its own whose
policy allows ``models.pull`` to reach the hub's hosts and nothing else; every call is
still decided and written to the one audit log, its rule naming the consent. The user's
network policy is not changed: offline stays offline for everything else.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from daemon.catalog import MLX_FILES, Entry
from daemon.egress.audit import AuditLog
from daemon.egress.gateway import Gateway
from daemon.egress.install import STAGING, pull_model
from daemon.egress.policy import Decision, Mode, Policy, Rule
from daemon.egress.pull import (
    CALLER,
    DEFAULT_ENDPOINT,
    HUB_HOSTS,
    Progress,
    check_endpoint,
    check_filename,
    fetch,
    repo_info,
)
from daemon.egress.store import fsync_dir
from daemon.engine import provenance
from daemon.engine.registry import ModelInfo, Registry
from daemon.errors import EgressFailed, InvalidModel, InvalidParams

# progress(file, index, count) -> the byte progress callback for that file
FileProgress = Callable[[str, int, int], Progress]


@dataclass(frozen=True)
class Consent(Policy):
    """Allow-listed for the hub's hosts, for ``models.pull`` only; its decisions name the
    download the user agreed to, so the audit log says why the call was allowed."""

    label: str = ""

    def decide(self, caller: str, host: str) -> Decision:
        decision = super().decide(caller, host)
        if not decision.allowed:
            return decision
        return Decision("allow", f"consent: {self.label}", f"the user agreed to {self.label}")


def consent_gateway(audit: AuditLog, endpoint: str, label: str) -> Gateway:
    """A gateway for one agreed download from ``endpoint`` (close it afterwards)."""
    host = httpx.URL(check_endpoint(endpoint)).host
    hosts = HUB_HOSTS if check_endpoint(endpoint) == DEFAULT_ENDPOINT else (host,)
    policy = Consent(Mode.ALLOW_LISTED, tuple(Rule(h, CALLER) for h in hosts), label=label)
    return Gateway(policy, audit)


def pull_entry(
    gateway: Gateway,
    registry: Registry,
    entry: Entry,
    fmt: str,
    *,
    endpoint: str = DEFAULT_ENDPOINT,
    progress: FileProgress | None = None,
) -> tuple[ModelInfo, dict[str, Any]]:
    """Pull ``entry``'s ``fmt`` download and register it; returns the model and its
    provenance record."""
    download = entry.downloads[fmt]
    name = entry.model_name(fmt)
    if name in {m.name for m in registry.list()}:
        raise InvalidParams(
            f"{name} is already installed; remove it first (`hearth models rm {name}`)",
            model=name,
        )
    commit, files = download.revision, None
    if not download.revision_verified or fmt == "mlx":
        said, files = repo_info(gateway, download.repo, revision=commit, endpoint=endpoint)
        if download.revision_verified and said not in (None, commit):
            raise EgressFailed(f"the hub listed {download.repo} at {said}, not {commit}")
        if said is None and not download.revision_verified:
            raise EgressFailed(f"the hub did not say which commit {commit} of "
                               f"{download.repo} is, so it cannot be pinned")  # fmt: skip
        commit = said or commit
    if fmt == "gguf":
        assert download.file is not None
        on_bytes = progress(download.file, 0, 1) if progress else None
        info, _ = pull_model(
            gateway, registry, download.repo, download.file, revision=commit,
            endpoint=endpoint, expected_sha256=download.sha256, progress=on_bytes, name=name,
        )  # fmt: skip
        verified = {download.file: f"sha256:{info.sha256}"}
    else:
        info, verified = _pull_folder(
            gateway, registry, download.repo, files or [], commit, name, endpoint, progress
        )
    source = provenance.record(
        registry.models_dir,
        name,
        {
            "catalog": entry.name,
            "format": fmt,
            "repo": download.repo,
            "revision": commit,
            "revision_pinned_by_catalog": download.revision_verified,
            "files": verified,
            "endpoint": check_endpoint(endpoint),
        },
    )
    return info, source


def _pull_folder(
    gateway: Gateway,
    registry: Registry,
    repo: str,
    listed: list[str],
    commit: str,
    name: str,
    endpoint: str,
    progress: FileProgress | None,
) -> tuple[ModelInfo, dict[str, str]]:
    files = sorted(f for f in listed if MLX_FILES.match(f))
    for file in files:
        check_filename(file)
    if "config.json" not in files or "tokenizer.json" not in files:
        raise InvalidModel(f"{repo} at {commit} is not an MLX model folder "
                           "(config.json or tokenizer.json is missing)")  # fmt: skip
    if not any(f.endswith(".safetensors") for f in files):
        raise InvalidModel(f"{repo} at {commit} has no .safetensors weights")
    models = registry.models_dir
    target = models / name
    staging = models / STAGING / name
    staging.mkdir(mode=0o700, parents=True, exist_ok=True)
    verified = {}
    for index, file in enumerate(files):
        on_bytes = progress(file, index, len(files)) if progress else None
        got = fetch(gateway, repo, file, staging, revision=commit, endpoint=endpoint,
                    progress=on_bytes)  # fmt: skip
        verified[file] = f"{got.checksum.kind}:{got.checksum.value}"
    try:
        _check_folder(staging, repo)
    except InvalidModel:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if target.exists():  # another pull or import got there first
        raise InvalidParams(f"a model named {name!r} already exists", model=name)
    os.replace(staging, target)
    fsync_dir(models)
    return registry.resolve(name), verified


def _check_folder(folder: Path, repo: str) -> None:
    """The checks an import makes, before the folder is renamed where models are found."""
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidModel(f"{repo}: the downloaded folder is not usable: {exc}") from exc
    if not isinstance(config, dict) or not isinstance(config.get("model_type"), str):
        raise InvalidModel(f"{repo}: config.json names no model_type")
