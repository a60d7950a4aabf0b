"""User settings from config.toml, with defaults that need no configuration at all."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENGINES = ("auto", "llamacpp", "mlx")
RANGES = [
    ("max_tokens", 1, 1 << 20), ("repeat_penalty", 1, 2), ("repeat_last_n", 0, 4096),
    ("background_nice", 0, 19),
]  # fmt: skip


@dataclass(frozen=True)
class Config:
    engine: str = "auto"
    default_model: str = "default"
    keep_alive: float = 300.0  # seconds; 0 unloads after each request, negative pins
    queue_size: int = 64  # pending requests per model before `busy`
    max_line_bytes: int = 1 << 20
    n_ctx: int = 4096
    max_tokens: int = 1024  # a chat answer's length unless the request says otherwise
    repeat_penalty: float = 1.1  # over the last repeat_last_n generated tokens; 1.0 = off
    repeat_last_n: int = 64
    memory_low_mb: float | None = None  # idle models unload below this; None: RAM/10, ≤ 1 GiB
    presets: dict[str, str] = field(default_factory=dict)  # user presets: name -> instruction
    # user presets with `route = "remote"`: answered by the remote model, through the gateway
    remote_presets: frozenset[str] = frozenset()
    hotkeys: dict[str, str] = field(default_factory=dict)  # action -> key sequence (the tray's)
    # Run models even where the kernel cannot keep their runner off the network. Off:
    # such a runner refuses to start (see daemon.engine.sandbox).
    allow_unconfined_runners: bool = False
    # The nice value background requests compute at (Linux): 19 lets every other program
    # go first; less lets background work progress on a machine that is never idle.
    background_nice: int = 19

    @classmethod
    def load(cls, path: Path) -> Config:
        """Read config.toml; a missing file means defaults, a broken one a clear error."""
        try:
            text = path.read_text(encoding="utf-8")
            raw = tomllib.loads(text)
        except FileNotFoundError:
            return cls()
        except OSError as exc:
            raise ValueError(f"{path}: cannot read it ({exc.strerror})") from exc
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path}: {exc}") from exc
        return cls.from_dict(raw, source=str(path), text=text)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "config", text: str = "") -> Config:
        """Check every value; ``text`` (the file's own text) lets errors name a line."""
        values: dict[str, Any] = {}
        for key, value in raw.items():
            if key in ("presets", "hotkeys"):
                continue
            if key not in _KNOWN:
                raise ValueError(f"{source}: unknown setting {key!r}")
            kind, what = _KNOWN[key]
            if not isinstance(value, kind) or isinstance(value, bool) != (kind is bool):
                raise ValueError(f"{source}: {key} must be {what}, not {value!r}")
            values[key] = value
        if values.get("engine", "auto") not in ENGINES:
            raise ValueError(f"{source}: engine must be one of {', '.join(ENGINES)}")
        for key, lo, hi in RANGES:
            if key in values and not lo <= values[key] <= hi:
                raise ValueError(f"{source}: {key} must be from {lo} to {hi}")
        hotkeys = raw.get("hotkeys", {})
        if not isinstance(hotkeys, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in hotkeys.items()
        ):
            raise ValueError(f"{source}: [hotkeys] maps actions to key sequences (strings)")
        presets, remote = _presets(raw.get("presets", []), source, text)
        return cls(**values, presets=presets, remote_presets=remote, hotkeys=dict(hotkeys))


_KNOWN: dict[str, tuple[type | tuple[type, ...], str]] = {
    "engine": (str, "a string (auto, llamacpp or mlx)"),
    "default_model": (str, "a model name (a string)"),
    "keep_alive": ((int, float), "a number of seconds"),
    "queue_size": (int, "a whole number"),
    "max_line_bytes": (int, "a whole number of bytes"),
    "n_ctx": (int, "a whole number of tokens"),
    "max_tokens": (int, "a whole number of tokens"),
    "repeat_penalty": ((int, float), "a number from 1 (off) to 2"),
    "repeat_last_n": (int, "a whole number of tokens"),
    "memory_low_mb": ((int, float), "a number of megabytes"),
    "allow_unconfined_runners": (bool, "true or false"),
    "background_nice": (int, "a whole number from 0 to 19"),
}


def _presets(items: Any, source: str, text: str) -> tuple[dict[str, str], frozenset[str]]:
    """User presets: each needs a name and a non-empty instruction. A user preset may
    replace a built-in one of the same name (rewrite.presets marks it as the user's).
    Also the names of those routed to the remote model: rewrites stay local unless a
    preset says ``route = "remote"`` explicitly."""
    if not isinstance(items, list):
        raise ValueError(f"{source}: presets must be a list of [[presets]] tables")
    headers = [n for n, line in enumerate(text.splitlines(), 1) if line.strip() == "[[presets]]"]
    presets: dict[str, str] = {}
    remote: set[str] = set()
    for i, item in enumerate(items):
        where = f"{source}:{headers[i]}" if i < len(headers) else f"{source}: presets[{i}]"
        name = item.get("name") if isinstance(item, dict) else None
        instruction = item.get("instruction") if isinstance(item, dict) else None
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"{where}: each [[presets]] needs a name")
        if not isinstance(instruction, str) or not instruction.strip():
            raise ValueError(f"{where}: preset {name!r} needs a non-empty instruction")
        if name in presets:
            raise ValueError(f"{where}: preset {name!r} is defined twice")
        route = item.get("route", "local")
        if route not in ("local", "remote"):
            raise ValueError(f'{where}: preset {name!r}: route must be "local" or "remote"')
        if route == "remote":
            remote.add(name)
        presets[name] = instruction
    return presets, frozenset(remote)
