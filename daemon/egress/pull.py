"""Download one file from a Hugging Face-style hub, kept only once its checksum matches.

The flow is the hub client's: a HEAD on ``{endpoint}/{repo}/resolve/{revision}/{file}``
(redirects not followed) reports the file's checksum and the commit the revision points
to, then a GET of that commit streams the file, following the redirect to the CDN.

Which checksum: the hub sends ``X-Linked-Etag`` on files stored in LFS (model weights);
its value is the SHA-256 of the file. Small files kept in git have only an ``ETag``: the
git blob SHA-1 (``sha1("blob <size>\\0" + content)``), which is checked instead. An
``expected_sha256`` from the caller wins over both, and a hub that disagrees with it is
refused before anything is downloaded.

The bytes go to ``.<name>.<tag>.part`` beside the destination; a later pull resumes it
with an HTTP Range request. Only a verified file is renamed into place; a file that fails
verification is deleted, so nothing unverified is ever left where a model is looked for.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx

from daemon.egress.gateway import Gateway
from daemon.egress.store import fsync_dir
from daemon.errors import EgressFailed, IntegrityError, InvalidParams, ModelNotFound

CALLER = "models.pull"
DEFAULT_ENDPOINT = "https://huggingface.co"
# Where huggingface.co sends downloads: allow these for models.pull to use the real hub.
HUB_HOSTS = ("huggingface.co", "*.huggingface.co", "*.hf.co")

Progress = Callable[[int, int | None], None]

_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?"
_REPO = re.compile(rf"^{_NAME}/{_NAME}$")
_COMPONENT = re.compile(r"^[A-Za-z0-9._+=-]{1,255}$")
_REVISION = re.compile(r"^[A-Za-z0-9._/-]{1,255}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SHA1 = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class Checksum:
    kind: str  # "sha256" or "git-sha1"
    value: str
    source: str  # where it came from, for the error message


def check_repo(repo: str) -> str:
    if not _REPO.match(repo) or ".." in repo:
        raise InvalidParams(f"{repo!r} is not a repository id like 'owner/name'", repo=repo)
    return repo


def check_filename(file: str) -> tuple[str, ...]:
    """The path components of a file inside a repository; anything that could step out
    of the destination (``..``, absolute, backslash, NUL, drive letters) is refused."""
    parts = tuple(file.split("/"))
    if (
        not file
        or "\0" in file
        or "\\" in file
        or any(part in ("", ".", "..") or not _COMPONENT.match(part) for part in parts)
    ):
        raise InvalidParams(
            f"{file!r} is not a plain file name or relative path inside a repository",
            file=file,
        )
    return parts


def check_revision(revision: str) -> str:
    if not _REVISION.match(revision) or ".." in revision or revision.startswith("/"):
        raise InvalidParams(f"{revision!r} is not a branch, tag or commit", revision=revision)
    return revision


def check_endpoint(endpoint: str) -> str:
    try:
        url = httpx.URL(endpoint)
    except httpx.InvalidURL:
        raise InvalidParams(f"{endpoint!r} is not a hub address like {DEFAULT_ENDPOINT}") from None
    if url.scheme not in ("http", "https") or not url.host or url.query or url.fragment:
        raise InvalidParams(f"{endpoint!r} is not a hub address like {DEFAULT_ENDPOINT}")
    return str(url).rstrip("/")


def repo_info(
    gateway: Gateway,
    repo: str,
    *,
    revision: str = "main",
    endpoint: str = DEFAULT_ENDPOINT,
    token: str | None = None,
) -> tuple[str | None, list[str]]:
    """The commit ``revision`` points at (None if the hub does not say) and the files of
    ``repo`` there, from the hub's model API (``{endpoint}/api/models/{repo}/revision/
    {revision}``: its ``sha`` and ``siblings``)."""
    check_repo(repo)
    check_revision(revision)
    url = f"{check_endpoint(endpoint)}/api/models/{repo}/revision/{quote(revision, safe='')}"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    reply = gateway.request(CALLER, f"list the files of {repo}", "GET", url, headers=headers)
    host = httpx.URL(url).host
    _raise_for_status(reply.status, repo, host)
    try:
        answer = reply.json()
        names = [sibling["rfilename"] for sibling in answer["siblings"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise EgressFailed(f"{host} did not answer with the file list of {repo}") from exc
    sha = str(answer.get("sha") or "").lower()
    return (sha if _SHA1.match(sha) else None), [n for n in names if isinstance(n, str)]


def list_files(
    gateway: Gateway,
    repo: str,
    *,
    revision: str = "main",
    endpoint: str = DEFAULT_ENDPOINT,
    token: str | None = None,
) -> list[str]:
    """The files of ``repo`` at ``revision`` (see :func:`repo_info`)."""
    return repo_info(gateway, repo, revision=revision, endpoint=endpoint, token=token)[1]


def _hub_checksum(headers: httpx.Headers) -> Checksum | None:
    for name in ("x-linked-etag", "etag"):
        value = headers.get(name, "").removeprefix("W/").strip('"').lower()
        if _SHA256.match(value):
            return Checksum("sha256", value, f"the hub's {name} header")
        if _SHA1.match(value) and name == "etag":
            return Checksum("git-sha1", value, "the hub's etag header")
    return None


def _raise_for_status(status: int, what: str, host: str) -> None:
    if status == 404:
        raise ModelNotFound(f"{what} is not on {host}", status=status)
    if status in (401, 403):
        raise EgressFailed(
            f"{host} refused {what} ({status}): the repository may be gated or private; "
            "accept its terms on the hub and pass a token",
            status=status,
        )
    if status >= 400:
        raise EgressFailed(f"{host} answered {status} for {what}", status=status)


def _file_digest(path: Path, kind: str) -> str:
    if kind == "sha256":
        digest = hashlib.sha256()
    else:
        digest = hashlib.sha1(b"blob %d\0" % path.stat().st_size, usedforsecurity=False)
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _probe(
    gateway: Gateway, url: str, headers: Mapping[str, str], what: str, wanted: str | None
) -> tuple[Checksum, str | None]:
    """HEAD the file: the checksum to hold it to, and the commit its revision points at."""
    head = gateway.request(
        CALLER, f"download {what}", "HEAD", url, headers=headers, follow_redirects=False
    )
    _raise_for_status(head.status, what, httpx.URL(url).host)
    hub = _hub_checksum(head.headers)
    if wanted is not None and hub is not None and hub.kind == "sha256" and hub.value != wanted:
        raise IntegrityError(
            f"{what}: the hub serves sha256 {hub.value}, not the expected {wanted}",
            expected=wanted,
            actual=hub.value,
        )
    checksum = Checksum("sha256", wanted, "the caller") if wanted else hub
    if checksum is None:
        raise IntegrityError(f"{what}: the hub reported no checksum for it; pass expected_sha256")
    commit = head.headers.get("x-repo-commit", "").lower()
    return checksum, commit if _SHA1.match(commit) else None


def _fetch(
    gateway: Gateway,
    url: str,
    headers: Mapping[str, str],
    part: Path,
    what: str,
    progress: Progress | None,
) -> None:
    """Stream ``url`` into ``part``, resuming from the bytes already there."""
    offset = part.stat().st_size if part.exists() else 0
    ranged = {**headers, "Range": f"bytes={offset}-"} if offset else dict(headers)
    with gateway.stream(CALLER, f"download {what}", "GET", url, headers=ranged) as stream:
        host = httpx.URL(stream.url).host
        if stream.status == 416 and offset:
            return  # nothing left to fetch: the partial file is whole (verification decides)
        content_range = stream.headers.get("content-range", "")
        if stream.status == 206 and not content_range.startswith(f"bytes {offset}-"):
            part.unlink(missing_ok=True)
            raise EgressFailed(f"{host} sent the wrong part of the file; starting over")
        if stream.status != 206:
            _raise_for_status(stream.status, what, host)
            if stream.status != 200:
                raise EgressFailed(f"{host} answered {stream.status} for {what}")
            offset = 0  # the server sent the whole file: start over
        total = content_range.rpartition("/")[2] if stream.status == 206 else None
        length = stream.headers.get("content-length")
        size = int(total) if total and total.isdigit() else None
        if size is None and length and length.isdigit():
            size = offset + int(length)
        with open(part, "ab" if offset else "wb") as file:
            done = offset
            for chunk in stream.iter_bytes():
                file.write(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, size)
            file.flush()
            os.fsync(file.fileno())


def _keep(part: Path, final: Path, dest: Path, checksum: Checksum, what: str) -> None:
    """Move a verified download into place, or delete it (and the folders made for it)."""
    actual = _file_digest(part, checksum.kind)
    if actual != checksum.value:
        part.unlink()
        folder = final.parent
        while folder != dest and dest in folder.parents and not any(folder.iterdir()):
            folder.rmdir()
            folder = folder.parent
        raise IntegrityError(
            f"{what} failed verification: its {checksum.kind} is {actual}, but "
            f"{checksum.source} says {checksum.value}. Nothing was kept; pull again.",
            expected=checksum.value,
            actual=actual,
        )
    os.replace(part, final)
    fsync_dir(final.parent)


@dataclass(frozen=True)
class Pulled:
    path: Path
    checksum: Checksum  # what the file was verified against
    commit: str | None  # the commit the hub said the revision points at


def pull(
    gateway: Gateway,
    repo: str,
    file: str,
    dest_dir: Path | str,
    *,
    revision: str = "main",
    endpoint: str = DEFAULT_ENDPOINT,
    expected_sha256: str | None = None,
    progress: Progress | None = None,
    token: str | None = None,
    attempts: int = 3,
) -> Path:
    """Download ``repo``'s ``file`` into ``dest_dir`` (subpaths kept) and return its path.

    ``progress(done, total)`` is called as bytes arrive (total None when unknown). A
    dropped connection is resumed up to ``attempts`` times; if all fail, the partial file
    stays for the next pull to resume. ``token`` is sent to the hub only, never to the CDN.
    """
    return fetch(
        gateway, repo, file, dest_dir, revision=revision, endpoint=endpoint,
        expected_sha256=expected_sha256, progress=progress, token=token, attempts=attempts,
    ).path  # fmt: skip


def fetch(
    gateway: Gateway,
    repo: str,
    file: str,
    dest_dir: Path | str,
    *,
    revision: str = "main",
    endpoint: str = DEFAULT_ENDPOINT,
    expected_sha256: str | None = None,
    progress: Progress | None = None,
    token: str | None = None,
    attempts: int = 3,
) -> Pulled:
    """:func:`pull`, also saying what the file was verified against. A file already in
    ``dest_dir`` that matches the hub's checksum is kept, not fetched again (a folder
    pull that stopped halfway resumes with the files it has)."""
    check_repo(repo)
    parts = check_filename(file)
    check_revision(revision)
    base = check_endpoint(endpoint)
    wanted = expected_sha256.lower() if expected_sha256 else None
    if wanted is not None and not _SHA256.match(wanted):
        raise InvalidParams("expected_sha256 must be 64 hex digits", expected_sha256=wanted)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    what = f"{repo}/{file} at {revision}"

    def resolve_url(rev: str) -> str:
        quoted = "/".join(quote(part, safe="") for part in parts)
        return f"{base}/{repo}/resolve/{quote(rev, safe='')}/{quoted}"

    checksum, commit = _probe(gateway, resolve_url(revision), headers, what, wanted)
    pinned = commit or revision  # the GET fetches the version the HEAD described
    dest = Path(dest_dir)
    final = dest.joinpath(*parts)
    final.parent.mkdir(parents=True, exist_ok=True)
    tag = hashlib.sha256(f"{base}|{repo}|{pinned}|{file}".encode()).hexdigest()[:12]
    part = final.with_name(f".{final.name}.{tag}.part")
    for stale in final.parent.glob(f".{final.name}.*.part"):
        if stale != part:
            stale.unlink()  # left by a pull of another version
    if final.is_file() and _file_digest(final, checksum.kind) == checksum.value:
        if progress is not None:
            size = final.stat().st_size
            progress(size, size)
        return Pulled(final, checksum, commit)
    for attempt in range(1, attempts + 1):
        try:
            _fetch(gateway, resolve_url(pinned), headers, part, what, progress)
            break
        except EgressFailed:
            if attempt == attempts:
                raise
    _keep(part, final, dest, checksum, what)
    return Pulled(final, checksum, commit)
