"""Where each pulled catalog model came from: kept in ``models/.sources.json``.

A catalog pull records the catalog name, the repository, the commit every file was
fetched at and the checksum each file was verified against, so what was downloaded can
be proven later (and compared with the hub's record). The most recently pulled catalog
model still installed is also what "default" means until the user picks one in
``config.toml``: the one command that brings a better model also puts it to use.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

SOURCES = ".sources.json"


def read(models_dir: Path) -> dict[str, dict[str, Any]]:
    """Every recorded source by model name; a missing or damaged file reads as none."""
    try:
        data = json.loads((models_dir / SOURCES).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, dict)}


def _write(models_dir: Path, sources: dict[str, dict[str, Any]]) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".sources-", dir=models_dir)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(sources, out, indent=1, sort_keys=True)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, models_dir / SOURCES)


def record(models_dir: Path, name: str, source: dict[str, Any]) -> dict[str, Any]:
    """Remember where ``name`` came from; returns the record (with ``pulled_at``)."""
    sources = read(models_dir)
    sources[name] = {**source, "pulled_at": round(time.time(), 3)}
    _write(models_dir, sources)
    return sources[name]


def forget(models_dir: Path, name: str) -> None:
    sources = read(models_dir)
    if sources.pop(name, None) is not None:
        _write(models_dir, sources)


def newest_first(models_dir: Path) -> list[str]:
    """Names of pulled catalog models, the most recently pulled first."""
    sources = read(models_dir)
    return sorted(sources, key=lambda n: -float(sources[n].get("pulled_at") or 0))
