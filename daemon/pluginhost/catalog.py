"""Which plugins exist, which are enabled, and what the user granted each.

- First-party plugins: folders with a plugin.toml in the ``plugins`` package.
- User plugins: folders in the config dir's ``plugins/`` (``hearth plugins install``
  copies one there).
- ``plugins.json`` in the config dir (0600): per plugin, whether it is enabled and the
  permissions the user granted. A plugin runs only while its manifest asks for no more
  than was granted: an edit that asks for more stops it until it is enabled again.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import plugins
from daemon.egress.store import write_private
from daemon.errors import HearthError, InvalidParams, NotFound
from daemon.paths import Paths
from daemon.pluginhost.manifest import Manifest, Permissions, load_manifest

MAX_FILES = 200
MAX_BYTES = 10 << 20
SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", ".git")


def builtin_dir() -> Path:
    return Path(plugins.__file__).resolve().parent


@dataclass
class Entry:
    folder: Path
    builtin: bool
    manifest: Manifest | None
    error: str | None = None  # why its manifest could not be loaded

    @property
    def id(self) -> str:
        return self.manifest.id if self.manifest else self.folder.name


@dataclass
class Grant:
    enabled: bool
    permissions: Permissions


class Catalog:
    def __init__(self, paths: Paths) -> None:
        self.user_dir = paths.config / "plugins"
        self.state_file = paths.config / "plugins.json"
        self.data_root = paths.data / "plugins"
        self.entries: dict[str, Entry] = {}
        self.grants: dict[str, Grant] = {}

    def load(self) -> None:
        self.user_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.entries = {}
        for folder in sorted(builtin_dir().iterdir()):
            if (folder / "plugin.toml").is_file():
                self._add(folder, builtin=True)
        for folder in sorted(self.user_dir.iterdir()):
            if folder.is_dir() and not folder.name.startswith("."):
                self._add(folder, builtin=False)
        self.grants = self._read_state()

    def _add(self, folder: Path, builtin: bool) -> Entry:
        try:
            entry = Entry(folder, builtin, load_manifest(folder))
            if not builtin and entry.id != folder.name:
                raise InvalidParams(f"its id {entry.id!r} is not its folder's name")
        except HearthError as exc:
            entry = Entry(folder, builtin, None, exc.message)
        other = self.entries.get(entry.id)
        if other is not None and other.builtin:
            entry = Entry(folder, False, None, f"{entry.id} is the id of a first-party plugin")
            self.entries[f"{entry.id} (user)"] = entry
            return entry
        self.entries[entry.id] = entry
        return entry

    def reload(self, plugin_id: str) -> Entry | None:
        """Read one user plugin's folder again (after its files changed)."""
        folder = self.user_dir / plugin_id
        self.entries.pop(plugin_id, None)
        if not (folder / "plugin.toml").exists() and not folder.is_dir():
            return None
        return self._add(folder, builtin=False)

    def get(self, plugin_id: str) -> Entry:
        entry = self.entries.get(plugin_id)
        if entry is None:
            raise NotFound(
                f"no plugin {plugin_id!r}: `hearth plugins list` shows them", plugin=plugin_id
            )
        return entry

    def manifest(self, plugin_id: str) -> Manifest:
        entry = self.get(plugin_id)
        if entry.manifest is None:
            raise InvalidParams(f"{plugin_id} cannot be loaded: {entry.error}", plugin=plugin_id)
        return entry.manifest

    def data_dir(self, plugin_id: str) -> Path:
        return self.data_root / plugin_id

    # -- grants ------------------------------------------------------------------------

    def approved(self, plugin_id: str) -> Permissions | None:
        """The permissions to run with, when the plugin is enabled and covered by its grant."""
        grant = self.grants.get(plugin_id)
        entry = self.entries.get(plugin_id)
        if grant is None or not grant.enabled or entry is None or entry.manifest is None:
            return None
        wanted = entry.manifest.permissions
        return wanted if grant.permissions.covers(wanted) else None

    def needs_approval(self, plugin_id: str) -> bool:
        grant = self.grants.get(plugin_id)
        entry = self.entries.get(plugin_id)
        return bool(
            grant
            and grant.enabled
            and entry
            and entry.manifest
            and not grant.permissions.covers(entry.manifest.permissions)
        )

    def set_grant(self, plugin_id: str, grant: Grant | None) -> None:
        if grant is None:
            self.grants.pop(plugin_id, None)
        else:
            self.grants[plugin_id] = grant
        state = {
            "version": 1,
            "plugins": {
                pid: {"enabled": g.enabled, "granted": g.permissions.to_dict()}
                for pid, g in sorted(self.grants.items())
            },
        }
        write_private(self.state_file, json.dumps(state, indent=2).encode())

    def _read_state(self) -> dict[str, Grant]:
        try:
            raw = json.loads(self.state_file.read_text())
            return {
                pid: Grant(bool(g["enabled"]), Permissions.from_dict(g["granted"]))
                for pid, g in raw["plugins"].items()
            }
        except FileNotFoundError:
            return {}
        except (ValueError, KeyError, TypeError, AttributeError, HearthError):
            # Never looser than the user chose: an unreadable file grants nothing.
            return {}

    # -- install and remove ------------------------------------------------------------

    def install(self, source: Path) -> Manifest:
        """Copy a plugin folder into the user plugins dir (replacing an older copy)."""
        source = source.expanduser().resolve()
        if not source.is_dir():
            raise InvalidParams(f"{source} is not a folder: a plugin is a folder", field="path")
        manifest = load_manifest(source)
        existing = self.entries.get(manifest.id)
        if existing is not None and existing.builtin:
            raise InvalidParams(f"{manifest.id} is the id of a first-party plugin", field="id")
        _check_tree(source)
        staging = self.user_dir / f".install-{manifest.id}"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(source, staging, ignore=SKIP)
        target = self.user_dir / manifest.id
        old = self.user_dir / f".old-{manifest.id}"
        shutil.rmtree(old, ignore_errors=True)
        if target.exists():
            os.rename(target, old)
        os.rename(staging, target)
        shutil.rmtree(old, ignore_errors=True)
        entry = self._add(target, builtin=False)
        assert entry.manifest is not None
        return entry.manifest

    def remove(self, plugin_id: str) -> None:
        entry = self.get(plugin_id)
        if entry.builtin:
            raise InvalidParams(
                f"{plugin_id} is a first-party plugin: disable it with "
                f"`hearth plugins disable {plugin_id}`"
            )
        shutil.rmtree(entry.folder, ignore_errors=True)
        shutil.rmtree(self.data_dir(plugin_id), ignore_errors=True)
        self.entries.pop(plugin_id, None)
        with contextlib.suppress(KeyError):
            self.set_grant(plugin_id, None)


def _check_tree(source: Path) -> None:
    files = size = 0
    for root, dirs, names in os.walk(source):
        dirs[:] = [d for d in dirs if d not in ("__pycache__", ".git")]
        for name in [*dirs, *names]:
            path = Path(root) / name
            if path.is_symlink():
                raise InvalidParams(f"{path} is a symbolic link: a plugin may not hold any")
        for name in names:
            files += 1
            size += (Path(root) / name).stat().st_size
    if files > MAX_FILES or size > MAX_BYTES:
        raise InvalidParams(
            f"{source} holds {files} files, {size} bytes: a plugin may hold at most "
            f"{MAX_FILES} files and {MAX_BYTES >> 20} MiB"
        )
