"""Named records — settings and plugin data — sealed, and found by a keyed lookup tag.

The row key is HMAC(records key, name), so the file does not reveal which settings
exist or what a plugin called its data; the name is also sealed inside the record so
re-encryption can compute the new tag. Values are any JSON.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from daemon.vault.crypto import record_failed
from daemon.vault.keyset import KeySet


def setting_name(key: str) -> str:
    return f"setting\0{key}"


def plugin_name(plugin_id: str, key: str) -> str:
    return f"plugin\0{plugin_id}\0{key}"


class Records:
    def __init__(self, conn: sqlite3.Connection, keys: KeySet) -> None:
        self._conn = conn
        self._keys = keys

    def get(self, name: str, default: Any) -> Any:
        lookup = self._keys.records_key().lookup(name)
        row = self._conn.execute(
            "SELECT key_id, sealed FROM records WHERE lookup = ?", (lookup,)
        ).fetchone()
        if row is None:
            return default
        record = self._keys.sealer(row[0]).open_json("records", lookup.hex(), row[1])
        if record.get("name") != name:
            raise record_failed("records", lookup.hex())
        return record["value"]

    def put(self, name: str, value: Any) -> None:
        key = self._keys.records_key()
        lookup = key.lookup(name)
        sealed = key.seal_json("records", lookup.hex(), {"name": name, "value": value})
        self._conn.execute(
            "INSERT OR REPLACE INTO records VALUES (?, ?, ?)", (lookup, key.key_id, sealed)
        )

    def delete(self, name: str) -> None:
        lookup = self._keys.records_key().lookup(name)
        self._conn.execute("DELETE FROM records WHERE lookup = ?", (lookup,))

    def names(self, prefix: str) -> list[str]:
        """The names that start with ``prefix`` (each record is opened: they are few)."""
        found = []
        for lookup, key_id, sealed in self._conn.execute(
            "SELECT lookup, key_id, sealed FROM records"
        ).fetchall():
            name = self._keys.sealer(key_id).open_json("records", lookup.hex(), sealed)["name"]
            if isinstance(name, str) and name.startswith(prefix):
                found.append(name[len(prefix) :])
        return sorted(found)

    def verify(self) -> int:
        """Open every record (IntegrityError on the first bad one); returns how many."""
        rows = self._conn.execute("SELECT lookup, key_id, sealed FROM records").fetchall()
        for lookup, key_id, sealed in rows:
            self._keys.sealer(key_id).open("records", lookup.hex(), sealed)
        return len(rows)
