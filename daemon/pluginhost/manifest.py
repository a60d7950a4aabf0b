"""plugin.toml: who a plugin is, what it may touch, and the limits it runs under.

Nothing is granted by default: a missing permission is the narrowest one. Paths are
given as the user writes them (``~/Notes``) and expanded against the user's home when
the plugin is sandboxed; a trigger on a path must lie inside a granted read path.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from daemon.egress.policy import Rule
from daemon.errors import InvalidParams

ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,47}$")
MAX_PATHS = 32


@dataclass(frozen=True)
class Permissions:
    model: bool = False
    network: tuple[str, ...] = ()
    files_read: tuple[str, ...] = ()
    files_write: tuple[str, ...] = ()
    clipboard: bool = False
    notify: bool = False

    def covers(self, wanted: Permissions) -> bool:
        """True when every right in ``wanted`` is among these (the user's grant)."""
        return (
            (self.model or not wanted.model)
            and set(wanted.network) <= set(self.network)
            and set(wanted.files_read) <= set(self.files_read)
            and set(wanted.files_write) <= set(self.files_write)
            and (self.clipboard or not wanted.clipboard)
            and (self.notify or not wanted.notify)
        )

    def describe(self) -> list[str]:
        """One line per right, for the consent prompt and `plugins info`."""
        lines = []
        if self.model:
            lines.append("model: ask the local model")
        for host in self.network:
            lines.append(f"network: reach {host} (through the egress gateway, audited)")
        for path in self.files_read:
            lines.append(f"files: read {path}")
        for path in self.files_write:
            lines.append(f"files: write {path}")
        if self.clipboard:
            lines.append("clipboard: read and replace the clipboard")
        if self.notify:
            lines.append("notify: show notifications")
        return lines or ["(none: it runs with no access to anything)"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "network": list(self.network),
            "files": {"read": list(self.files_read), "write": list(self.files_write)},
            "clipboard": self.clipboard,
            "notify": self.notify,
        }

    @classmethod
    def from_dict(cls, raw: Any, source: str = "permissions") -> Permissions:
        if not isinstance(raw, dict):
            raise _bad(source, "must be a table")
        known = {"model", "network", "files", "clipboard", "notify"}
        unknown = set(raw) - known
        if unknown:
            raise _bad(source, f"unknown permission(s): {', '.join(sorted(unknown))}")
        files = raw.get("files", {})
        if not isinstance(files, dict) or set(files) - {"read", "write"}:
            raise _bad(f"{source}.files", "must be a table with read and write lists")
        network = _strings(raw.get("network", []), f"{source}.network")
        for host in network:
            try:
                Rule(host, "*")
            except InvalidParams as exc:
                raise _bad(f"{source}.network", exc.message) from None
        return cls(
            model=_bool(raw.get("model", False), f"{source}.model"),
            network=network,
            files_read=_paths(files.get("read", []), f"{source}.files.read"),
            files_write=_paths(files.get("write", []), f"{source}.files.write"),
            clipboard=_bool(raw.get("clipboard", False), f"{source}.clipboard"),
            notify=_bool(raw.get("notify", False), f"{source}.notify"),
        )


@dataclass(frozen=True)
class Limits:
    """What the OS enforces on the plugin's process (and what the host enforces on calls)."""

    memory_mb: int = 512  # address space (RLIMIT_AS)
    cpu_seconds: int = 600  # CPU time of one process life (RLIMIT_CPU): then SIGXCPU
    timeout: float = 120.0  # seconds one command or trigger may run before it is killed
    processes: int = 16  # processes and threads it may have at once
    open_files: int = 64

    @classmethod
    def from_dict(cls, raw: Any) -> Limits:
        if not isinstance(raw, dict):
            raise _bad("limits", "must be a table")
        bounds: dict[str, tuple[float, float]] = {
            "memory_mb": (64, 16384),
            "cpu_seconds": (1, 86400),
            "timeout": (0.5, 86400),
            "processes": (1, 1024),
            "open_files": (16, 4096),
        }
        values: dict[str, Any] = {}
        for key, value in raw.items():
            if key not in bounds:
                raise _bad("limits", f"unknown limit {key!r}; known: {', '.join(bounds)}")
            lo, hi = bounds[key]
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not lo <= value <= hi
            ):
                raise _bad(f"limits.{key}", f"must be a number from {lo:g} to {hi:g}")
            values[key] = value if key == "timeout" else int(value)
        return cls(**values)


@dataclass(frozen=True)
class Manifest:
    id: str
    name: str
    version: str
    entry: str
    description: str
    folder: Path
    permissions: Permissions = field(default_factory=Permissions)
    limits: Limits = field(default_factory=Limits)

    @property
    def entry_path(self) -> Path:
        return self.folder / self.entry

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "folder": str(self.folder),
            "permissions": self.permissions.to_dict(),
            "limits": asdict(self.limits),
        }


def load_manifest(folder: Path) -> Manifest:
    """Read and check ``folder/plugin.toml``; InvalidParams names the field and the rule."""
    path = folder / "plugin.toml"
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidParams(f"{folder} has no plugin.toml: a plugin is a folder with one") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InvalidParams(f"{path}: {exc}", field="plugin.toml") from None
    return parse_manifest(raw, folder)


def parse_manifest(raw: dict[str, Any], folder: Path) -> Manifest:
    known = {"id", "name", "version", "entry", "description", "permissions", "limits"}
    unknown = set(raw) - known
    if unknown:
        raise _bad("plugin.toml", f"unknown field(s): {', '.join(sorted(unknown))}")
    plugin_id = raw.get("id")
    if not isinstance(plugin_id, str) or not ID.match(plugin_id):
        raise _bad("id", "must be 1-48 lower-case letters, digits and dashes, e.g. 'my-plugin'")
    entry = raw.get("entry", "plugin.py")
    if (
        not isinstance(entry, str)
        or "/" in entry
        or "\\" in entry
        or not entry.endswith(".py")
        or entry.startswith(".")
    ):
        raise _bad("entry", "must be the name of a .py file in the plugin's folder")
    if not (folder / entry).is_file():
        raise _bad("entry", f"{entry} is not a file in {folder}")
    texts = {}
    for key, default in (("name", plugin_id), ("version", "0.0.0"), ("description", "")):
        value = raw.get(key, default)
        if not isinstance(value, str) or len(value) > 500:
            raise _bad(key, "must be a string of at most 500 characters")
        texts[key] = value
    return Manifest(
        id=plugin_id,
        entry=entry,
        folder=folder,
        permissions=Permissions.from_dict(raw.get("permissions", {})),
        limits=Limits.from_dict(raw.get("limits", {})),
        **texts,
    )


def expand(path: str, home: Path) -> Path:
    """A granted path as the sandbox sees it: ``~`` is the user's home, never relative."""
    if path == "~" or path.startswith("~/"):
        return home / path[2:] if len(path) > 1 else home
    return Path(path)


def _bad(field_name: str, rule: str) -> InvalidParams:
    return InvalidParams(f"plugin.toml: {field_name} {rule}", field=field_name)


def _bool(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise _bad(name, "must be true or false")
    return value


def _strings(value: Any, name: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise _bad(name, "must be a list of strings")
    if len(value) > MAX_PATHS:
        raise _bad(name, f"may list at most {MAX_PATHS} entries")
    return tuple(dict.fromkeys(value))


def _paths(value: Any, name: str) -> tuple[str, ...]:
    paths = _strings(value, name)
    for path in paths:
        if not (path.startswith("/") or path == "~" or path.startswith("~/")) or "\0" in path:
            raise _bad(name, f"{path!r} must be absolute or start with ~/")
        if ".." in Path(path).parts:
            raise _bad(name, f"{path!r} may not contain '..'")
    return paths
