"""``models.pull``: a GGUF file from a hub, verified, moved into the models folder, registered.

The download lands in ``models/.pull/`` (hidden from the registry) and, once its checksum
and GGUF header hold, is renamed to ``models/<name>.gguf``: one write of the bytes, no
copy. A partial download stays in ``.pull/`` for the next pull to resume. Requests that
fail validation (a file name that could escape, a malformed repository id) are refused
before any call, and the refusal is written to the audit log like a denied call.
"""

from __future__ import annotations

import os
from pathlib import Path

from daemon.egress.gateway import Gateway
from daemon.egress.pull import (
    CALLER,
    DEFAULT_ENDPOINT,
    Progress,
    check_endpoint,
    check_filename,
    check_repo,
    check_revision,
    list_files,
    pull,
)
from daemon.egress.store import fsync_dir
from daemon.engine.gguf import read_gguf
from daemon.engine.registry import ModelInfo, Registry, model_name
from daemon.errors import InvalidModel, InvalidParams

STAGING = ".pull"


def _validated(gateway: Gateway, repo: str, file: str | None, revision: str, endpoint: str) -> str:
    """The endpoint, once every part of the request is known to be safe to use."""
    what = f"{repo}/{file or ''}"
    try:
        check_repo(repo)
        if file is not None:
            check_filename(file)
            if not file.endswith(".gguf"):
                raise InvalidParams(
                    f"{file!r} is not a GGUF file: only single .gguf files can be pulled",
                    file=file,
                )
        check_revision(revision)
        return check_endpoint(endpoint)
    except InvalidParams as exc:
        path = f"/{repo}/resolve/{revision}/{file or ''}"
        url = endpoint.rstrip("/") + path if endpoint.startswith(("http://", "https://")) else path
        gateway.refuse(CALLER, f"download {what}", "GET", url, exc, "invalid-request")
        raise


def _choose(gateway: Gateway, repo: str, revision: str, endpoint: str) -> str:
    """The repository's only GGUF file; with several, the user names one."""
    files = sorted(f for f in list_files(gateway, repo, revision=revision, endpoint=endpoint)
                   if f.endswith(".gguf"))  # fmt: skip
    if len(files) == 1:
        check_filename(files[0])
        return files[0]
    if not files:
        raise InvalidParams(f"{repo} has no GGUF file at {revision}", repo=repo)
    shown = ", ".join(files[:12]) + (", …" if len(files) > 12 else "")
    raise InvalidParams(f"{repo} has {len(files)} GGUF files; name one: {shown}", files=files)


def _prune(folder: Path, stop: Path) -> None:
    """Remove empty folders from ``folder`` up to and including ``stop``."""
    while folder == stop or stop in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


def pull_model(
    gateway: Gateway,
    registry: Registry,
    repo: str,
    file: str | None = None,
    *,
    revision: str = "main",
    endpoint: str = DEFAULT_ENDPOINT,
    expected_sha256: str | None = None,
    progress: Progress | None = None,
    name: str | None = None,
) -> tuple[ModelInfo, str]:
    """Pull ``repo``'s ``file`` (default: its only GGUF file) and register it as ``name``
    (default: after the file); returns the model and the file pulled."""
    base = _validated(gateway, repo, file, revision, endpoint)
    if file is None:
        file = _choose(gateway, repo, revision, base)
    name = name or model_name(Path(file.rpartition("/")[2]))
    models = registry.models_dir
    target = models / f"{name}.gguf"
    taken = {m.name for m in registry.list()}
    if name in taken or target.exists():
        raise InvalidParams(
            f"a model named {name!r} already exists; remove it first (`hearth models rm {name}`)",
            model=name,
        )
    staging = models / STAGING
    staging.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        path = pull(
            gateway, repo, file, staging, revision=revision, endpoint=base,
            expected_sha256=expected_sha256, progress=progress,
        )  # fmt: skip
        try:
            read_gguf(path)
            if target.exists():  # another pull or import got there first
                raise InvalidParams(f"a model named {name!r} already exists", model=name)
        except (InvalidModel, InvalidParams):
            path.unlink()
            raise
        os.replace(path, target)
        fsync_dir(models)
    finally:
        _prune(staging.joinpath(*file.split("/")[:-1]), staging)  # a partial file stays
    return registry.resolve(name), file
