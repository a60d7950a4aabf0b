"""docs/protocol.md stays true: every method and every error kind is documented."""

from __future__ import annotations

from pathlib import Path

from daemon.errors import all_errors
from daemon.methods import all_methods

DOC = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()


def test_every_method_is_documented() -> None:
    missing = [name for name in all_methods() if f"`{name}`" not in DOC]
    assert not missing


def test_every_error_code_and_kind_is_documented() -> None:
    missing = [c.kind for c in all_errors() if f"| {c.code} | `{c.kind}` |" not in DOC]
    assert not missing
