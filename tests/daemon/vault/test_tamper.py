"""Altered records are refused with an IntegrityError that names them — never shown as text."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from daemon.errors import IntegrityError
from daemon.vault import Vault
from tests.daemon.vault.support import passphrase


def _sealed(db_path: Path, table: str, where: str) -> bytes:
    with sqlite3.connect(db_path) as conn:
        return bytes(conn.execute(f"SELECT sealed FROM {table} WHERE {where}").fetchone()[0])


def test_flipping_any_byte_of_a_stored_message_on_disk_raises_integrity_error_naming_it(
    db_path: Path,
) -> None:
    with Vault.create(db_path, passphrase()) as v:
        conv = v.new_conversation("t")
        v.append_message(conv, "user", "first")
        target = v.append_message(conv, "user", "the record we damage")
    sealed = _sealed(db_path, "messages", f"id = {target}")  # nonce || ciphertext || tag
    pristine = db_path.read_bytes()  # closed cleanly: everything is in the main file
    offset = pristine.index(sealed)

    for i in range(len(sealed)):
        damaged = bytearray(pristine)
        damaged[offset + i] ^= 0x01
        db_path.write_bytes(damaged)
        with Vault.open(db_path, passphrase()) as v, pytest.raises(IntegrityError) as failed:
            v.get_conversation(conv)
        assert failed.value.data == {"table": "messages", "row": str(target)}, i
        assert f"messages#{target}" in failed.value.message

    db_path.write_bytes(pristine)
    with Vault.open(db_path, passphrase()) as v:
        assert v.get_conversation(conv)["messages"][1]["content"] == "the record we damage"


def test_swapping_two_messages_ciphertexts_makes_both_fail(db_path: Path) -> None:
    with Vault.create(db_path, passphrase()) as v:
        conv = v.new_conversation()
        a = v.append_message(conv, "user", "alpha")
        b = v.append_message(conv, "user", "bravo")
    sealed_a, sealed_b = (_sealed(db_path, "messages", f"id = {i}") for i in (a, b))
    with sqlite3.connect(db_path) as conn:
        conn.execute("UPDATE messages SET sealed = ? WHERE id = ?", (sealed_b, a))
        conn.execute("UPDATE messages SET sealed = ? WHERE id = ?", (sealed_a, b))

    with Vault.open(db_path, passphrase()) as v:
        with pytest.raises(IntegrityError) as failed:
            v.get_conversation(conv)
        assert failed.value.data["row"] == str(a)
        with sqlite3.connect(db_path) as conn:  # take `a` away to reach `b`
            conn.execute("DELETE FROM messages WHERE id = ?", (a,))
        with pytest.raises(IntegrityError) as failed:
            v.get_conversation(conv)
        assert failed.value.data["row"] == str(b)


def test_a_message_moved_into_another_conversation_fails_to_open(db_path: Path) -> None:
    with Vault.create(db_path, passphrase()) as v:
        mine, other = v.new_conversation(), v.new_conversation()
        moved = v.append_message(mine, "user", "private")
    with sqlite3.connect(db_path) as conn:
        conn.execute("UPDATE messages SET conv_id = ? WHERE id = ?", (other, moved))
    with Vault.open(db_path, passphrase()) as v:
        with pytest.raises(IntegrityError) as failed:
            v.get_conversation(other)
        assert failed.value.data == {"table": "messages", "row": str(moved)}
        with pytest.raises(IntegrityError):
            v.search("private")


def test_a_setting_record_given_another_settings_ciphertext_fails(db_path: Path) -> None:
    with Vault.create(db_path, passphrase()) as v:
        v.set_setting("a", "one")
        v.set_setting("b", "two")
    with sqlite3.connect(db_path) as conn:
        rows = conn.execute("SELECT lookup, sealed FROM records").fetchall()
        conn.execute("UPDATE records SET sealed = ? WHERE lookup = ?", (rows[1][1], rows[0][0]))
    with Vault.open(db_path, passphrase()) as v:
        with pytest.raises(IntegrityError) as failed:
            v.verify()
        assert failed.value.data["table"] == "records"


def test_a_damaged_wrapped_data_key_is_an_integrity_error_naming_the_key(db_path: Path) -> None:
    with Vault.create(db_path, passphrase()) as v:
        conv = v.new_conversation()
        v.append_message(conv, "user", "x")
    with sqlite3.connect(db_path) as conn:
        key_id = conn.execute("SELECT key_id FROM conversations").fetchone()[0]
        wrapped = bytearray(
            conn.execute("SELECT wrapped FROM data_keys WHERE key_id = ?", (key_id,)).fetchone()[0]
        )
        wrapped[-1] ^= 0x80
        conn.execute("UPDATE data_keys SET wrapped = ? WHERE key_id = ?", (bytes(wrapped), key_id))
    with Vault.open(db_path, passphrase()) as v, pytest.raises(IntegrityError) as failed:
        v.get_conversation(conv)
    assert failed.value.data == {"table": "data_keys", "row": key_id}
