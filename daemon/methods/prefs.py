"""prefs.* and rewrite.presets.add / update / remove: the settings the tray app changes.

They persist in config.toml, rewritten atomically with tomlkit so the user's own
comments and layout survive. Not the vault: the daemon needs these before the vault
opens (engine, default model, keep-alive), presets and hotkeys must work on a box with
no keychain and no vault, and none of it is private. The file stays the one place a
person reads and edits by hand. Privacy settings (history, retention) stay in the vault
(settings.*).

Each change re-reads the file (hand edits made since the daemon started are kept),
validates the whole result with Config.from_dict, writes it, then applies it to the
running daemon: no restart needed. The read-modify-write has no await in it, so two
changes never interleave.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.items import AoT, Table

from daemon.app import App
from daemon.config import ENGINES, Config
from daemon.errors import InvalidParams
from daemon.methods import params as p
from daemon.methods.chat import presets_list
from daemon.presets import BUILTIN, presets
from daemon.rpc import Call, Register

PREFS = ("engine", "default_model", "keep_alive", "hotkeys")
PRESET_NAME = re.compile(r"^[\w][\w .-]{0,39}$")
MAX_INSTRUCTION = 2000
# "rewrite", "open_chat", or a namespaced one: "rewrite:<preset name>", "plugin:<name>"
HOTKEY_ACTION = re.compile(r"^[a-z][a-z0-9_]{0,31}(:[\w][\w .-]{0,39})?$")


# -- the file ----------------------------------------------------------------------------


def _read(path: Path) -> tomlkit.TOMLDocument:
    try:
        return tomlkit.parse(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return tomlkit.document()
    except (tomlkit.exceptions.ParseError, UnicodeDecodeError) as exc:
        raise InvalidParams(
            f"{path} cannot be read ({exc}); fix it by hand, then try again",
            field="config",
            reason="config_unreadable",
        ) from exc


def _write(path: Path, doc: tomlkit.TOMLDocument) -> None:
    """Replace the file atomically: a crash leaves the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".config-", suffix=".toml", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(tomlkit.dumps(doc))
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _commit(app: App, doc: tomlkit.TOMLDocument) -> None:
    """Validate the whole file, write it, and apply it to the running daemon."""
    path = app.paths.config_file
    try:
        config = Config.from_dict(doc.unwrap(), source=str(path), text=tomlkit.dumps(doc))
    except ValueError as exc:
        raise InvalidParams(str(exc), field="config", reason="config_invalid") from exc
    _write(path, doc)
    app.config = config
    app.scheduler.keep_alive = config.keep_alive  # the next timer armed uses it
    app.registry.default = config.default_model


def _presets(doc: tomlkit.TOMLDocument) -> AoT:
    if "presets" not in doc:
        doc["presets"] = tomlkit.aot()
    found = doc["presets"]
    if not isinstance(found, AoT):
        raise InvalidParams("presets in config.toml must be [[presets]] tables", field="config")
    return found


def _find(doc: tomlkit.TOMLDocument, name: str) -> int:
    for i, table in enumerate(_presets(doc)):
        if table.get("name") == name:
            return i
    if name in BUILTIN:
        raise InvalidParams(
            f"{name!r} is a built-in preset and cannot be changed; add one of your own",
            field="name",
            reason="builtin",
        )
    raise InvalidParams(f"no preset of yours is named {name!r}", field="name", reason="unknown")


# -- checks ------------------------------------------------------------------------------


def _preset_name(params: dict[str, Any], key: str = "name") -> str:
    name = p.required_str(params, key).strip()
    if not PRESET_NAME.match(name):
        raise InvalidParams(
            f"{key} must be 1-40 letters, digits, spaces, '.', '-' or '_'", field=key
        )
    return name


def _instruction(params: dict[str, Any]) -> str:
    text = p.required_str(params, "instruction").strip()
    if not text or len(text) > MAX_INSTRUCTION:
        raise InvalidParams(
            f"instruction must be 1-{MAX_INSTRUCTION} characters", field="instruction"
        )
    return text


def _pref_value(app: App, key: str, value: Any) -> Any:
    if key == "engine":
        if value not in ENGINES:
            raise InvalidParams(f"engine must be one of {', '.join(ENGINES)}", field="value")
        return value
    if key == "default_model":
        if not isinstance(value, str) or not value:
            raise InvalidParams("default_model must be a model name", field="value")
        return value if value == "default" else app.registry.resolve(value).name
    if key == "keep_alive":
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not number or not math.isfinite(value):
            raise InvalidParams(
                "keep_alive must be a number of seconds (0 unloads at once, negative pins)",
                field="value",
            )
        return int(value) if float(value).is_integer() else float(value)
    # hotkeys: the whole table at once, action -> key sequence ("" = none)
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and HOTKEY_ACTION.match(k) and isinstance(v, str) and len(v) <= 64
        for k, v in value.items()
    ):
        raise InvalidParams(
            "hotkeys must map action names (a-z, 0-9, _; 'rewrite:<preset>' for a preset) "
            "to key sequences like 'Ctrl+Alt+R'",
            field="value",
        )
    return {k: v.strip() for k, v in value.items()}


# -- handlers ----------------------------------------------------------------------------


async def _preset_list(call: Call) -> list[dict[str, Any]]:
    """The same list as rewrite.presets: every preset with its ``source``."""
    listed: list[dict[str, Any]] = (await presets_list(call, {}))["presets"]
    return listed


async def prefs_get(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    config = call.app.config
    return {
        "prefs": {
            "engine": config.engine,
            "default_model": config.default_model,
            "keep_alive": config.keep_alive,
            "hotkeys": dict(config.hotkeys),
        },
        "presets": await _preset_list(call),
        "config_file": str(call.app.paths.config_file),
    }


async def prefs_set(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    key = p.required_str(params, "key")
    if key not in PREFS:
        raise InvalidParams(f"unknown preference {key!r}; known: {', '.join(PREFS)}", field="key")
    if "value" not in params:
        raise InvalidParams("value is required", field="value")
    value = _pref_value(call.app, key, params["value"])
    doc = _read(call.app.paths.config_file)
    if key == "hotkeys":
        table = tomlkit.table()
        table.update(value)
        doc["hotkeys"] = table
    else:
        doc[key] = value
    _commit(call.app, doc)
    return {"key": key, "value": value}


async def presets_add(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    name, instruction = _preset_name(params), _instruction(params)
    if name in presets(call.app.config.presets):
        raise InvalidParams(f"a preset named {name!r} exists already", field="name")
    doc = _read(call.app.paths.config_file)
    table = tomlkit.table()
    table.update({"name": name, "instruction": instruction})
    _presets(doc).append(table)
    _commit(call.app, doc)
    return {"presets": await _preset_list(call)}


async def presets_update(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    name = _preset_name(params)
    doc = _read(call.app.paths.config_file)
    table: Table = _presets(doc)[_find(doc, name)]
    if params.get("new_name") is not None:
        new_name = _preset_name(params, "new_name")
        if new_name != name and new_name in presets(call.app.config.presets):
            raise InvalidParams(f"a preset named {new_name!r} exists already", field="new_name")
        table["name"] = new_name
    if params.get("instruction") is not None:
        table["instruction"] = _instruction(params)
    _commit(call.app, doc)
    return {"presets": await _preset_list(call)}


async def presets_remove(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    name = _preset_name(params)
    doc = _read(call.app.paths.config_file)
    del _presets(doc)[_find(doc, name)]
    _commit(call.app, doc)
    return {"presets": await _preset_list(call)}


def register(add: Register) -> None:
    add("prefs.get", prefs_get)
    add("prefs.set", prefs_set)
    add("rewrite.presets.add", presets_add)
    add("rewrite.presets.update", presets_update)
    add("rewrite.presets.remove", presets_remove)
