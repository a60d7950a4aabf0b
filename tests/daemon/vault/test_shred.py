"""Deleting a conversation crypto-shreds it (passphrase mode; keychain mode: test_keychain.py)."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from daemon.errors import IntegrityError, NotFound
from daemon.vault import Vault
from tests.daemon.vault.support import files_under, passphrase


def _build(db_path: Path) -> tuple[str, str]:
    with Vault.create(db_path, passphrase()) as v:
        doomed, kept = v.new_conversation("doomed"), v.new_conversation("kept")
        v.append_message(doomed, "user", "delete me")
        v.append_message(kept, "user", "keep me")
    return doomed, kept


def _row(db_path: Path, sql: str, *args: str) -> tuple[bytes, ...] | None:
    with sqlite3.connect(db_path) as conn:
        row = conn.execute(sql, args).fetchone()
    return None if row is None else tuple(bytes(x) if isinstance(x, bytes) else x for x in row)


def test_deleting_removes_the_wrapped_key_row_and_every_byte_of_it_from_the_live_files(
    db_path: Path,
) -> None:
    doomed, kept = _build(db_path)
    found = _row(db_path, "SELECT key_id FROM conversations WHERE id = ?", doomed)
    assert found is not None
    key_id = str(found[0])
    wrapped = _row(db_path, "SELECT wrapped FROM data_keys WHERE key_id = ?", key_id)
    message = _row(db_path, "SELECT sealed FROM messages WHERE conv_id = ?", doomed)
    assert wrapped is not None and message is not None

    with Vault.open(db_path, passphrase()) as v:
        v.delete_conversation(doomed)
        while_open = files_under(db_path.parent)  # the WAL is live
    after_close = files_under(db_path.parent)

    for name, data in [*while_open.items(), *after_close.items()]:
        assert wrapped[0] not in data, name
        assert message[0] not in data, name
    assert _row(db_path, "SELECT 1 FROM data_keys WHERE key_id = ?", key_id) is None
    with Vault.open(db_path, passphrase()) as v:
        with pytest.raises(NotFound):
            v.get_conversation(doomed)
        assert v.get_conversation(kept)["messages"][0]["content"] == "keep me"


def test_the_live_vaults_keys_cannot_open_a_deleted_conversation_in_an_older_copy(
    db_path: Path, tmp_path: Path
) -> None:
    """Someone holding the live vault and its key, plus a backup, still cannot read it."""
    doomed, _ = _build(db_path)
    backup = tmp_path / "backup.db"
    shutil.copyfile(db_path, backup)  # closed cleanly: the whole vault is in this file

    with Vault.open(db_path, passphrase()) as v:
        v.delete_conversation(doomed)

    # Graft the live header (which the live key opens) onto the old copy.
    with sqlite3.connect(backup) as old, sqlite3.connect(db_path) as live:
        header = live.execute("SELECT * FROM header").fetchone()
        old.execute("DELETE FROM header")
        old.execute(f"INSERT INTO header VALUES ({', '.join('?' * len(header))})", header)
    with Vault.open(backup, passphrase()) as grafted, pytest.raises(IntegrityError) as failed:
        grafted.get_conversation(doomed)
    assert failed.value.data["table"] == "data_keys"


def test_documented_limit_a_passphrase_copy_taken_before_deletion_still_opens_with_it(
    db_path: Path, tmp_path: Path
) -> None:
    """The passphrase re-derives the old key from the old salt: no design can stop that.

    (With the OS keychain the old copy becomes unreadable: see test_keychain.py.)
    """
    doomed, _ = _build(db_path)
    backup = tmp_path / "backup.db"
    shutil.copyfile(db_path, backup)
    with Vault.open(db_path, passphrase()) as v:
        v.delete_conversation(doomed)

    with Vault.open(backup, passphrase()) as old:
        assert old.get_conversation(doomed)["messages"][0]["content"] == "delete me"


def _hold_snapshot(db_path: Path) -> sqlite3.Connection:
    """Another program (a backup tool, say) in the middle of reading the vault."""
    reader = sqlite3.connect(db_path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM messages").fetchone()
    return reader


def _copy_opens(db_path: Path, tmp_path: Path, conv_id: str) -> bool:
    """Whether a copy of vault.db alone (no -wal) still opens ``conv_id`` with the passphrase."""
    copy = tmp_path / "copy" / "vault.db"
    copy.parent.mkdir(exist_ok=True)
    shutil.copyfile(db_path, copy)
    with Vault.open(copy, passphrase()) as old:
        try:
            old.get_conversation(conv_id)
        except NotFound:
            return False
    return True


def test_a_shred_a_reader_holds_back_is_owed_and_finished_at_the_next_write(
    db_path: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    doomed, kept = _build(db_path)
    with Vault.open(db_path, passphrase()) as v:
        reader = _hold_snapshot(db_path)
        v.delete_conversation(doomed)
        assert v.checkpoint_owed  # recorded beside the file, and said
        assert "may still hold deleted data" in caplog.text
        assert _copy_opens(db_path, tmp_path, doomed)  # what the marker is for
        reader.close()
        v.append_message(kept, "user", "a later write")
        assert not v.checkpoint_owed
        assert not _copy_opens(db_path, tmp_path, doomed)  # taken while the vault is open


def test_an_owed_checkpoint_survives_a_close_and_is_finished_at_the_next_open(
    db_path: Path, tmp_path: Path
) -> None:
    doomed, _ = _build(db_path)
    reader = _hold_snapshot(db_path)
    with Vault.open(db_path, passphrase()) as v:
        v.delete_conversation(doomed)
    assert (db_path.parent / "vault.db-checkpoint-owed").exists()  # the close could not either
    reader.close()
    with Vault.open(db_path, passphrase()) as v:
        assert not v.checkpoint_owed
        assert not _copy_opens(db_path, tmp_path, doomed)
