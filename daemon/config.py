"""User settings from config.toml, with defaults that need no configuration at all."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENGINES = ("auto", "llamacpp", "mlx")


@dataclass(frozen=True)
class Config:
    engine: str = "auto"
    default_model: str = "default"
    keep_alive: float = 300.0  # seconds; 0 unloads after each request, negative pins
    queue_size: int = 64  # pending requests per model before `busy`
    max_line_bytes: int = 1 << 20
    n_ctx: int = 4096
    presets: dict[str, str] = field(default_factory=dict)  # user presets: name -> instruction

    @classmethod
    def load(cls, path: Path) -> Config:
        """Read config.toml; a missing file means defaults, a broken one a clear error."""
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls()
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path}: {exc}") from exc
        return cls.from_dict(raw, source=str(path))

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "config") -> Config:
        known: dict[str, type | tuple[type, ...]] = {
            "engine": str,
            "default_model": str,
            "keep_alive": (int, float),
            "queue_size": int,
            "max_line_bytes": int,
            "n_ctx": int,
        }
        values: dict[str, Any] = {}
        for key, value in raw.items():
            if key == "presets":
                continue
            if key not in known:
                raise ValueError(f"{source}: unknown setting {key!r}")
            if not isinstance(value, known[key]) or isinstance(value, bool):
                raise ValueError(f"{source}: {key} has the wrong type ({value!r})")
            values[key] = value
        if values.get("engine", "auto") not in ENGINES:
            raise ValueError(f"{source}: engine must be one of {', '.join(ENGINES)}")
        presets: dict[str, str] = {}
        for item in raw.get("presets", []):
            name, instruction = item.get("name"), item.get("instruction")
            if not isinstance(name, str) or not isinstance(instruction, str) or not name:
                raise ValueError(f"{source}: each [[presets]] needs a name and an instruction")
            presets[name] = instruction
        return cls(**values, presets=presets)
