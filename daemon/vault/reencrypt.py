"""Re-encrypt every record of a vault under new data keys, inside the caller's transaction.

Used by ``Vault.rotate(..., reencrypt=True)`` when a key may have leaked: afterwards no
record is readable with any key the vault used before. It runs inside the single SQLite
transaction of ``KeySet.rekey``, so a crash leaves either every record under the old
keys or every record under the new ones — never a mix.
"""

from __future__ import annotations

import sqlite3

from daemon.vault.keyset import RECORDS, KeySet, Step


def reencrypt_all(conn: sqlite3.Connection, keys: KeySet, step: Step) -> None:
    """Replace each data key by a new one and re-seal what it sealed; ``step`` after each."""
    for key_id, purpose in conn.execute("SELECT key_id, purpose FROM data_keys").fetchall():
        if purpose == RECORDS:
            _reencrypt_records(conn, keys, key_id)
        else:
            _reencrypt_conversation(conn, keys, key_id, purpose)
        keys.drop_data_key(key_id)
        step("rekeyed")


def _reencrypt_conversation(
    conn: sqlite3.Connection, keys: KeySet, key_id: str, purpose: str
) -> None:
    old = keys.sealer(key_id)
    new = keys.add_data_key(purpose)
    rows = conn.execute("SELECT id, sealed FROM conversations WHERE key_id = ?", (key_id,))
    for conv_id, sealed in rows.fetchall():
        conn.execute(
            "UPDATE conversations SET key_id = ?, sealed = ? WHERE id = ?",
            (
                new.key_id,
                new.seal("conversations", conv_id, old.open("conversations", conv_id, sealed)),
                conv_id,
            ),
        )
        messages = conn.execute("SELECT id, sealed FROM messages WHERE conv_id = ?", (conv_id,))
        for msg_id, msg in messages.fetchall():
            conn.execute(
                "UPDATE messages SET sealed = ? WHERE id = ?",
                (new.seal("messages", msg_id, old.open("messages", msg_id, msg)), msg_id),
            )


def _reencrypt_records(conn: sqlite3.Connection, keys: KeySet, key_id: str) -> None:
    """Settings and plugin data: new key, and new lookup tags (they derive from the key)."""
    old = keys.sealer(key_id)
    new = keys.add_data_key(RECORDS)
    rows = conn.execute("SELECT lookup, sealed FROM records WHERE key_id = ?", (key_id,))
    for lookup, sealed in rows.fetchall():
        record = old.open_json("records", lookup.hex(), sealed)
        new_lookup = new.lookup(record["name"])
        conn.execute("DELETE FROM records WHERE lookup = ?", (lookup,))
        conn.execute(
            "INSERT INTO records VALUES (?, ?, ?)",
            (new_lookup, new.key_id, new.seal_json("records", new_lookup.hex(), record)),
        )
