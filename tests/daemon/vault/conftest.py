"""Fixtures for the vault tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.vault import Vault
from tests.daemon.vault.support import Torture, passphrase


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "vault.db"


@pytest.fixture
def vault(db_path: Path) -> Iterator[Vault]:
    with Vault.create(db_path, passphrase()) as v:
        yield v


@pytest.fixture
def torture() -> Iterator[Torture]:
    t = Torture()
    yield t
    t.close()
