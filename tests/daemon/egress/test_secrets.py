"""Sealed-file secrets (no keychain): what they protect is recorded and said, never assumed."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.egress.secrets import SealedFileSecrets, confidentiality
from daemon.errors import IntegrityError


@pytest.fixture
def machine_id(tmp_path: Path) -> str:
    path = tmp_path / "machine-id"
    path.write_text("3d1219c7c4c5404aaa1f6d2a48adfda4\n")
    return str(path)


def test_without_a_machine_id_the_store_is_bound_to_the_uid_alone_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secrets = SealedFileSecrets(tmp_path / "sealed", (str(tmp_path / "no-machine-id"),))
    secrets.put("remote-api-key", b"sk-test")
    assert secrets.get("remote-api-key") == b"sk-test"
    assert secrets.machine_bound is False
    assert "no machine id" in caplog.text
    note = confidentiality(secrets)
    assert note is not None and "anyone with a copy of the data folder" in note


def test_a_store_sealed_to_the_machine_id_stays_shut_when_the_id_is_gone(
    tmp_path: Path, machine_id: str
) -> None:
    SealedFileSecrets(tmp_path / "sealed", (machine_id,)).put("audit-log-key", b"k" * 32)
    later = SealedFileSecrets(tmp_path / "sealed", (str(tmp_path / "gone"),))
    with pytest.raises(IntegrityError) as shut:
        later.get("audit-log-key")
    assert shut.value.data["reason"] == "no_machine_id"
    assert "cannot be read now" in shut.value.message


def test_a_machine_bound_store_is_still_not_called_confidential(
    tmp_path: Path, machine_id: str
) -> None:
    secrets = SealedFileSecrets(tmp_path / "sealed", (machine_id,))
    assert secrets.machine_bound is True
    note = confidentiality(secrets)
    assert note is not None and "not confidential" in note and "every local account" in note


def test_a_store_made_before_the_binding_was_recorded_still_opens(
    tmp_path: Path, machine_id: str
) -> None:
    SealedFileSecrets(tmp_path / "sealed", (machine_id,)).put("audit-log-key", b"k" * 32)
    (tmp_path / "sealed" / "binding").unlink()
    assert SealedFileSecrets(tmp_path / "sealed", (machine_id,)).get("audit-log-key") == b"k" * 32
