"""The curated model catalog: what `hearth models catalog` offers and `pull NAME` downloads.

The catalog is data shipped in the package (``catalog.toml`` beside this module), read and
checked field by field here, so a typo in it is a clear error naming the entry, never a
half-loaded list. Each entry has one download per platform: a GGUF file for llama.cpp
(everywhere) and an MLX model folder for Apple Silicon. :func:`recommend` picks one entry
for this machine from its RAM: the best-ranked permissive, ungated model whose memory
need fits in a share of the RAM, leaving the rest to the user's own programs.

``HEARTH_CATALOG`` names another catalog file to read instead (the tests serve their own
catalog from a hub on 127.0.0.1).
"""

from __future__ import annotations

import math
import os
import platform
import re
import sys
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from daemon.errors import InvalidModel

CATALOG_ENV = "HEARTH_CATALOG"
PACKAGED = Path(__file__).with_name("catalog.toml")
FORMATS = ("gguf", "mlx")
PERMISSIVE = frozenset({"apache-2.0", "mit"})
TAGS = frozenset({"rewrite", "chat", "multilingual", "code"})
RUNNER_MB = 160  # what the daemon's memory check adds for the runner process itself
RAM_SHARE = 0.4  # a recommended model needs at most this share of the machine's RAM
# Without Apple Silicon's GPU, llama.cpp runs on the CPU: past ~2B parameters a rewrite
# takes long enough to break the flow of the hotkey, so bigger models are not recommended.
CPU_MAX_PARAMS_B = 2.0
MIN_PARAMS_B, MAX_PARAMS_B = 0.5, 4.0
# The files of an MLX model folder a pull fetches (README, images and the like are not).
MLX_FILES = re.compile(r"^[^/]+\.(json|safetensors|jinja|model|txt)$")
ONLY_NETWORK_CALL = (
    "This download is the only network call Hearth makes, and it is written to the audit "
    "log (`hearth audit list`)."
)

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_PARAMS = re.compile(r"^(\d+(?:\.\d+)?)B$")


class CatalogError(InvalidModel):
    """The catalog file is malformed; the message names the entry and the field."""


@dataclass(frozen=True)
class Download:
    """One platform's download of a catalog model."""

    format: str  # "gguf" | "mlx"
    repo: str
    revision: str  # a commit, or a branch when revision_verified is false
    revision_verified: bool
    quantization: str
    architecture: str
    size_mb: int
    size_estimated: bool = False
    file: str | None = None  # the GGUF file; an MLX folder takes every MLX_FILES file
    sha256: str | None = None  # known SHA-256 of the GGUF file, else the hub's is checked

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Entry:
    name: str
    family: str
    parameters: str
    description: str
    license: str
    license_url: str
    license_note: str | None
    gated: bool
    context_length: int
    kv_cache_mb: int
    ram_mb: int
    rank: int
    tags: tuple[str, ...]
    downloads: dict[str, Download]

    @property
    def params_b(self) -> float:
        match = _PARAMS.match(self.parameters)
        return float(match.group(1)) if match else 0.0

    @property
    def permissive(self) -> bool:
        return self.license in PERMISSIVE and not self.gated

    def model_name(self, fmt: str) -> str:
        """The name the pulled model gets in `hearth models list`."""
        return self.name if fmt == "gguf" else f"{self.name}-mlx"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["tags"] = list(self.tags)
        data["downloads"] = {fmt: d.to_dict() for fmt, d in self.downloads.items()}
        return data


@dataclass(frozen=True)
class Machine:
    ram_mb: int | None  # None where the total RAM cannot be read
    apple_silicon: bool

    @property
    def format(self) -> str:
        """MLX folders on Apple Silicon, GGUF files everywhere else."""
        return "mlx" if self.apple_silicon else "gguf"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "format": self.format}


def this_machine() -> Machine:
    try:
        ram: int | None = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 1_000_000
    except (AttributeError, ValueError, OSError):  # Windows has no sysconf
        ram = None
    apple = sys.platform == "darwin" and platform.machine() == "arm64"
    return Machine(ram, apple)


def catalog_path(environ: dict[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    override = env.get(CATALOG_ENV)
    return Path(override) if override else PACKAGED


def load(path: Path | None = None) -> list[Entry]:
    """Read and check the catalog (the packaged one unless ``path`` or HEARTH_CATALOG)."""
    path = path or catalog_path()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise CatalogError(f"the model catalog {path} cannot be read: {exc}") from exc
    if raw.get("schema") != 1:
        raise CatalogError(f"{path}: schema must be 1")
    items = raw.get("models")
    if not isinstance(items, list) or not items:
        raise CatalogError(f"{path}: no [[models]] entries")
    entries = [_entry(item, f"{path}: models[{i}]") for i, item in enumerate(items)]
    names = [e.name for e in entries]
    if dupes := sorted({n for n in names if names.count(n) > 1}):
        raise CatalogError(f"{path}: {dupes[0]!r} is listed twice")
    return entries


def find(entries: list[Entry], name: str) -> Entry | None:
    wanted = name.lower()
    return next((e for e in entries if e.name == wanted), None)


def recommend(entries: list[Entry], machine: Machine) -> Entry | None:
    """The best-ranked permissive, ungated rewrite model that fits in RAM_SHARE of this
    machine's RAM (8 GB assumed where it cannot be read), and, without Apple Silicon, has
    at most CPU_MAX_PARAMS_B parameters; the smallest if none fits."""
    candidates = [e for e in entries if e.permissive and "rewrite" in e.tags]
    if not candidates:
        return None
    budget = RAM_SHARE * (machine.ram_mb or 8000)
    most = MAX_PARAMS_B if machine.apple_silicon else CPU_MAX_PARAMS_B
    fitting = [e for e in candidates if e.ram_mb <= budget and e.params_b <= most]
    if not fitting:
        return min(candidates, key=lambda e: e.ram_mb)
    return max(fitting, key=lambda e: (e.rank, -e.ram_mb))


def ram_needed(size_mb: int, kv_cache_mb: int) -> int:
    """What the daemon's memory check counts, rounded up to 100 MB."""
    return int(math.ceil((size_mb + kv_cache_mb + RUNNER_MB) / 100) * 100)


# -- checking an entry -------------------------------------------------------------------


def _get(item: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = item.get(key)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise CatalogError(f"{where}: {key} is missing or not a {getattr(kind, '__name__', kind)}")
    return value


def _optional(item: dict[str, Any], key: str, kind: type, where: str) -> Any:
    return None if item.get(key) is None else _get(item, key, kind, where)


def _entry(item: Any, where: str) -> Entry:
    if not isinstance(item, dict):
        raise CatalogError(f"{where}: not a table")
    name = _get(item, "name", str, where)
    where = f"{where} ({name})"
    if not _NAME.match(name):
        raise CatalogError(f"{where}: name must be lower-case letters, digits, . _ -")
    params = _get(item, "parameters", str, where)
    match = _PARAMS.match(params)
    if not match or not MIN_PARAMS_B <= float(match.group(1)) <= MAX_PARAMS_B:
        raise CatalogError(f"{where}: parameters must be like '1.5B', from 0.5B to 4B")
    tags = _get(item, "tags", list, where)
    if not tags or not set(tags) <= TAGS:
        raise CatalogError(f"{where}: tags must be some of {', '.join(sorted(TAGS))}")
    downloads = {fmt: _download(item.get(fmt), fmt, f"{where}.{fmt}") for fmt in FORMATS}
    entry = Entry(
        name=name,
        family=_get(item, "family", str, where),
        parameters=params,
        description=_get(item, "description", str, where),
        license=_get(item, "license", str, where),
        license_url=_get(item, "license_url", str, where),
        license_note=_optional(item, "license_note", str, where),
        gated=_get(item, "gated", bool, where),
        context_length=_get(item, "context_length", int, where),
        kv_cache_mb=_get(item, "kv_cache_mb", int, where),
        ram_mb=_get(item, "ram_mb", int, where),
        rank=_get(item, "rank", int, where),
        tags=tuple(tags),
        downloads=downloads,
    )
    if not entry.license_url.startswith("https://"):
        raise CatalogError(f"{where}: license_url must be an https:// address")
    if entry.license not in PERMISSIVE and not (entry.gated or entry.license_note):
        raise CatalogError(f"{where}: a non-permissive license needs gated or license_note")
    biggest = max(d.size_mb for d in downloads.values())
    if entry.ram_mb != ram_needed(biggest, entry.kv_cache_mb):
        raise CatalogError(
            f"{where}: ram_mb must be {ram_needed(biggest, entry.kv_cache_mb)} "
            f"(largest download {biggest} + KV cache {entry.kv_cache_mb} + runner {RUNNER_MB})"
        )
    return entry


def _download(item: Any, fmt: str, where: str) -> Download:
    if not isinstance(item, dict):
        raise CatalogError(f"{where}: missing (every entry has a gguf and an mlx download)")
    repo = _get(item, "repo", str, where)
    if not _REPO.match(repo):
        raise CatalogError(f"{where}: repo must be 'owner/name'")
    revision = _get(item, "revision", str, where)
    verified = _get(item, "revision_verified", bool, where)
    if verified != bool(_COMMIT.match(revision)):
        raise CatalogError(
            f"{where}: a verified revision is a 40-hex commit; an unverified one a branch"
        )
    sha256 = _optional(item, "sha256", str, where)
    if sha256 is not None and not _SHA256.match(sha256):
        raise CatalogError(f"{where}: sha256 must be 64 lower-case hex digits")
    file = _optional(item, "file", str, where)
    if fmt == "gguf" and (file is None or not file.endswith(".gguf") or "/" in file):
        raise CatalogError(f"{where}: a gguf download names its .gguf file")
    if fmt == "mlx" and (file is not None or sha256 is not None):
        raise CatalogError(f"{where}: an mlx download is a folder: no file, no sha256")
    size = _get(item, "size_mb", int, where)
    if not 50 <= size <= 4000:
        raise CatalogError(f"{where}: size_mb {size} is outside 50–4000 MB")
    return Download(
        format=fmt,
        repo=repo,
        revision=revision,
        revision_verified=verified,
        quantization=_get(item, "quantization", str, where),
        architecture=_get(item, "architecture", str, where),
        size_mb=size,
        size_estimated=bool(item.get("size_estimated", False)),
        file=file,
        sha256=sha256,
    )
