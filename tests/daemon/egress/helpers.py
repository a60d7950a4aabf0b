"""Reading the audit log back in tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def read_entries(path: Path) -> list[dict[str, Any]]:
    """The audit entries as they are on disk (checkpoint records left out)."""
    records = [json.loads(line) for line in path.read_bytes().splitlines()]
    return [r for r in records if r["type"] == "entry"]


def calls(path: Path) -> list[tuple[str, str | None, str, Any]]:
    """(phase, method, path, status-or-decision) for each entry: a readable call trace."""
    return [
        (
            e["phase"],
            e["method"],
            e["path"],
            e["status"] if e["phase"] == "outcome" else e["decision"],
        )
        for e in read_entries(path)
    ]
