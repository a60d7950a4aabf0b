"""Conversation and message rows: the SQL and sealing, without locking or transactions.

``Vault`` wraps each call in its lock and, for writes, in one transaction. Each
conversation's title and messages are sealed under that conversation's own data key.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from daemon.errors import NotFound
from daemon.vault.crypto import new_id
from daemon.vault.keyset import KeySet

CONVERSATION = "conversation"  # purpose of a conversation's data key

# The id is part of the associated data, so it is chosen before sealing (safe under the
# write lock of BEGIN IMMEDIATE); AUTOINCREMENT's sequence keeps ids from being reused.
_NEXT_MESSAGE_ID = (
    "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'messages'), 0),"
    " coalesce((SELECT max(id) FROM messages), 0)) + 1"
)


class Conversations:
    def __init__(self, conn: sqlite3.Connection, keys: KeySet) -> None:
        self._conn = conn
        self._keys = keys

    def insert(self, title: str, created: float, updated: float) -> str:
        conv_id = new_id()
        key = self._keys.add_data_key(CONVERSATION)
        sealed = key.seal_json("conversations", conv_id, {"title": title})
        self._conn.execute(
            "INSERT INTO conversations VALUES (?, ?, ?, ?, ?)",
            (conv_id, key.key_id, created, updated, sealed),
        )
        return conv_id

    def append(self, conv_id: str, role: str, content: str, at: float) -> int:
        key = self._keys.sealer(self.key_id(conv_id))
        msg_id = int(self._conn.execute(_NEXT_MESSAGE_ID).fetchone()[0])
        record = {"role": role, "content": content, "time": at}
        sealed = key.seal_json("messages", msg_id, record)
        self._conn.execute("INSERT INTO messages VALUES (?, ?, ?)", (msg_id, conv_id, sealed))
        self._conn.execute(
            "UPDATE conversations SET updated = max(updated, ?) WHERE id = ?", (at, conv_id)
        )
        return msg_id

    def set_title(self, conv_id: str, title: str) -> None:
        key = self._keys.sealer(self.key_id(conv_id))
        sealed = key.seal_json("conversations", conv_id, {"title": title})
        self._conn.execute("UPDATE conversations SET sealed = ? WHERE id = ?", (sealed, conv_id))

    def read(self, conv_id: str) -> dict[str, Any]:
        row = self._conn.execute(
            "SELECT key_id, created, updated, sealed FROM conversations WHERE id = ?", (conv_id,)
        ).fetchone()
        if row is None:
            raise no_conversation(conv_id)
        key = self._keys.sealer(row[0])
        rows = self._conn.execute(
            "SELECT id, sealed FROM messages WHERE conv_id = ? ORDER BY id", (conv_id,)
        )
        return {
            "id": conv_id,
            "title": key.open_json("conversations", conv_id, row[3])["title"],
            "created": row[1],
            "updated": row[2],
            "messages": [{"id": i, **key.open_json("messages", i, s)} for i, s in rows],
        }

    def summaries(self) -> list[dict[str, Any]]:
        """Every conversation without its messages, most recently updated first."""
        rows = self._conn.execute(
            "SELECT c.id, c.key_id, c.created, c.updated, c.sealed, count(m.id)"
            " FROM conversations c LEFT JOIN messages m ON m.conv_id = c.id"
            " GROUP BY c.id ORDER BY c.updated DESC"
        ).fetchall()
        return [
            {
                "id": conv_id,
                "title": self._keys.sealer(key_id).open_json("conversations", conv_id, s)["title"],
                "created": created,
                "updated": updated,
                "messages": count,
            }
            for conv_id, key_id, created, updated, s, count in rows
        ]

    def updated_before(self, cutoff: float) -> list[str]:
        rows = self._conn.execute("SELECT id FROM conversations WHERE updated < ?", (cutoff,))
        return [str(r[0]) for r in rows]

    def delete(self, conv_id: str) -> None:
        """Delete a conversation's rows and its wrapped data key (inside a transaction)."""
        key_id = self.key_id(conv_id)
        self._conn.execute("DELETE FROM messages WHERE conv_id = ?", (conv_id,))
        self._conn.execute("DELETE FROM conversations WHERE id = ?", (conv_id,))
        self._keys.drop_data_key(key_id)

    def key_id(self, conv_id: str) -> str:
        row = self._conn.execute(
            "SELECT key_id FROM conversations WHERE id = ?", (conv_id,)
        ).fetchone()
        if row is None:
            raise no_conversation(conv_id)
        return str(row[0])


def no_conversation(conv_id: str) -> NotFound:
    return NotFound(f"There is no conversation {conv_id!r}.", conversation=conv_id)
