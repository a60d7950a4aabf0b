"""``Vault``: the user's conversations, settings and plugin data, encrypted in one SQLite file.

Every method is a complete, durable operation: when it returns, its change is committed
(WAL fsynced); when it raises, nothing of it was stored. A full disk raises
``StorageFull`` and the vault works again once space is freed. Methods are thread-safe
(one lock), so the daemon may call them from worker threads.

Deleting a conversation crypto-shreds it: its wrapped data key row is deleted (and
zeroed by ``secure_delete``), the master key is replaced and, with a keychain, so is the
KEK; ``daemon.vault``'s docstring says what that means for copies taken before. The WAL
is then folded into ``vault.db``; when a reader of an older snapshot prevents that, the
debt is recorded beside the file and paid at the next open, write or close.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from daemon.errors import IntegrityError, NotFound, VaultLocked
from daemon.paths import Paths
from daemon.vault.conversations import Conversations
from daemon.vault.db import SCHEMA_SQL, OwedCheckpoint, connect, storage_errors, transaction
from daemon.vault.keys import KeySource
from daemon.vault.keyset import KeySet, Step, no_step, read_header
from daemon.vault.records import Records, plugin_name, setting_name
from daemon.vault.reencrypt import reencrypt_all
from daemon.vault.search import search_records


def vault_path(paths: Paths) -> Path:
    """Where the daemon keeps the vault."""
    return paths.data / "vault.db"


class Vault:
    """An open (unlocked) vault. Build one with ``Vault.create`` or ``Vault.open``.

    ``on_step`` is called with a name at each step of a key change (rotation, deletion):
    fault-injection tests kill the process there.
    """

    def __init__(self, path: Path, conn: sqlite3.Connection, keys: KeySet, on_step: Step) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = conn
        self._keys = keys
        self._step = on_step
        self._lock = threading.RLock()
        self._conversations = Conversations(conn, keys)
        self._records = Records(conn, keys)
        self._owed = OwedCheckpoint(path)
        with self._locked() as locked:
            self._owed.settle(locked)  # a shred a crash or a reader left unfinished

    # -- lifecycle ---------------------------------------------------------------------

    @staticmethod
    def is_initialized(path: Path) -> bool:
        """True when ``path`` holds a vault with a header (a key hierarchy)."""
        return Vault.protection(path) is not None

    @staticmethod
    def protection(path: Path) -> str | None:
        """How the vault at ``path`` is protected ("keychain", "passphrase"), None if none.

        Needs no key: the daemon uses it to choose a key source, or to ask for a passphrase.
        """
        if not path.is_file():
            return None
        with storage_errors():
            conn = sqlite3.connect(path)
            try:
                header = read_header(conn)
            finally:
                conn.close()
        return header.kek_kind if header else None

    @classmethod
    def create(cls, path: Path, source: KeySource, *, on_step: Step = no_step) -> Vault:
        """A new, empty vault protected by ``source``; refuses to overwrite one."""
        if cls.is_initialized(path):
            raise FileExistsError(f"a vault already exists at {path}")
        conn = connect(path)
        try:
            with storage_errors():
                conn.executescript(SCHEMA_SQL)
                keys = KeySet.initialize(conn, source, on_step)
        except BaseException:
            conn.close()
            raise
        return cls(path, conn, keys, on_step)

    @classmethod
    def open(cls, path: Path, source: KeySource, *, on_step: Step = no_step) -> Vault:
        """Unlock an existing vault. A wrong key raises and leaves the file untouched."""
        if not cls.is_initialized(path):
            raise NotFound(f"There is no vault at {path}.", path=str(path))
        conn = connect(path)
        try:
            with storage_errors():
                header = read_header(conn)
                assert header is not None
                keys = KeySet.unlock(conn, header, source, on_step)
        except BaseException:
            conn.close()
            raise
        return cls(path, conn, keys, on_step)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                with storage_errors():
                    self._owed.settle(self._conn)
                self._conn.close()
                self._conn = None

    def __enter__(self) -> Vault:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def checkpoint_owed(self) -> bool:
        """True while deleted data may still be in ``vault.db`` (see ``OwedCheckpoint``)."""
        return self._owed.owed

    @property
    def key_kind(self) -> str:
        """How the vault is protected: "keychain" or "passphrase"."""
        return self._keys.source.kind

    # -- conversations -----------------------------------------------------------------

    def new_conversation(self, title: str = "") -> str:
        with self._write():
            now = time.time()
            return self._conversations.insert(title, now, now)

    def append_message(self, conv_id: str, role: str, content: str) -> int:
        """Store one message; it is on disk when this returns. Returns its id."""
        with self._write():
            return self._conversations.append(conv_id, role, content, time.time())

    def add_turn(
        self, conv_id: str | None, messages: Sequence[tuple[str, str]], title: str = ""
    ) -> tuple[str, list[int]]:
        """Store ``(role, content)`` messages in one transaction: all of them or none.

        ``conv_id`` None starts a new conversation titled ``title``. Returns the
        conversation's id and the new messages' ids.
        """
        with self._write():
            now = time.time()
            if conv_id is None:
                conv_id = self._conversations.insert(title, now, now)
            ids = [self._conversations.append(conv_id, r, c, now) for r, c in messages]
            return conv_id, ids

    def set_title(self, conv_id: str, title: str) -> None:
        with self._write():
            self._conversations.set_title(conv_id, title)

    def get_conversation(self, conv_id: str) -> dict[str, Any]:
        """``{id, title, created, updated, messages: [{id, role, content, time}]}``."""
        with self._locked():
            return self._conversations.read(conv_id)

    def list_conversations(self) -> list[dict[str, Any]]:
        """``[{id, title, created, updated, messages: count}]``, most recent first."""
        with self._locked():
            return self._conversations.summaries()

    def search(self, text: str, limit: int = 100) -> list[dict[str, Any]]:
        """Case-insensitive substring matches in titles and messages:
        ``[{conversation, title, message (id or None for the title), role, snippet}]``."""
        with self._locked() as conn:
            return search_records(conn, self._keys, text, limit)

    def delete_conversation(self, conv_id: str) -> None:
        """Crypto-shred one conversation; NotFound if there is none."""
        with self._locked():
            self._conversations.key_id(conv_id)
            self._shred([conv_id])

    def purge_older_than(self, days: float) -> int:
        """Crypto-shred every conversation not updated for ``days`` days; returns how many."""
        with self._locked():
            ids = self._conversations.updated_before(time.time() - days * 86400)
            if ids:
                self._shred(ids)
            return len(ids)

    def export(self, conv_id: str) -> dict[str, Any]:
        """A conversation as plain JSON-able data (decrypted: handle with care)."""
        return {"format": "hearth.conversation", "version": 1, **self.get_conversation(conv_id)}

    def import_conversations(self, items: Iterable[Mapping[str, Any]]) -> list[str]:
        """Store exported conversations (under new ids) in one transaction; their ids."""
        ids = []
        with self._write():
            for item in items:
                now = time.time()
                created, updated = item.get("created", now), item.get("updated", now)
                conv_id = self._conversations.insert(str(item.get("title", "")), created, updated)
                for m in item.get("messages", []):
                    at = m.get("time", now)
                    self._conversations.append(conv_id, str(m["role"]), str(m["content"]), at)
                ids.append(conv_id)
        return ids

    # -- settings and plugin data (any JSON value) -------------------------------------

    def get_setting(self, key: str, default: Any = None) -> Any:
        with self._locked():
            return self._records.get(setting_name(key), default)

    def set_setting(self, key: str, value: Any) -> None:
        with self._write():
            self._records.put(setting_name(key), value)

    def plugin_get(self, plugin_id: str, key: str, default: Any = None) -> Any:
        with self._locked():
            return self._records.get(plugin_name(plugin_id, key), default)

    def plugin_put(self, plugin_id: str, key: str, value: Any) -> None:
        with self._write():
            self._records.put(plugin_name(plugin_id, key), value)

    def plugin_delete(self, plugin_id: str, key: str) -> None:
        with self._write():
            self._records.delete(plugin_name(plugin_id, key))

    def plugin_keys(self, plugin_id: str) -> list[str]:
        """Every key ``plugin_id`` has stored, sorted."""
        with self._locked():
            return self._records.names(plugin_name(plugin_id, ""))

    def plugin_clear(self, plugin_id: str) -> int:
        """Delete all of a plugin's data in one transaction; returns how many keys."""
        with self._write():
            keys = self._records.names(plugin_name(plugin_id, ""))
            for key in keys:
                self._records.delete(plugin_name(plugin_id, key))
            return len(keys)

    # -- keys --------------------------------------------------------------------------

    def rotate(self, new_source: KeySource, *, reencrypt: bool = False) -> None:
        """Protect the vault with ``new_source`` from now on.

        Without ``reencrypt`` the master key is re-wrapped under the new KEK (fast). With
        it, a new master key and new data keys replace every old key and every record is
        re-encrypted, in one transaction: a crash leaves the old vault or the new one.
        """
        with self._locked() as conn:
            if reencrypt:
                self._keys.rekey(
                    new_source,
                    fresh_kek=True,
                    fresh_master=True,
                    change=lambda: reencrypt_all(conn, self._keys, self._step),
                )
            else:
                self._keys.rekey(new_source, fresh_kek=True, fresh_master=False)
            self._owed.settle(conn, after_key_change=True)

    def verify(self) -> dict[str, int]:
        """Decrypt every record and run SQLite's integrity check; returns counts."""
        with self._locked() as conn:
            summaries = self._conversations.summaries()
            messages = sum(len(self._conversations.read(c["id"])["messages"]) for c in summaries)
            records = self._records.verify()
            check = conn.execute("PRAGMA integrity_check").fetchone()[0]
            if check != "ok":
                raise IntegrityError(f"The vault file is damaged: {check}", reason="corrupt_file")
            return {"conversations": len(summaries), "messages": messages, "records": records}

    # -- internals ---------------------------------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._conn is None:
                raise VaultLocked("The vault is closed.")
            with storage_errors():
                yield self._conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._locked() as conn:
            with transaction(conn):
                yield conn
            self._owed.settle(conn)

    def _shred(self, conv_ids: list[str]) -> None:
        """Delete conversations and replace the master key (and a renewable KEK)."""

        def delete() -> None:
            for conv_id in conv_ids:
                self._conversations.delete(conv_id)
                self._step("deleted")

        source = self._keys.source
        self._keys.rekey(source, fresh_kek=source.renewable, fresh_master=True, change=delete)
        assert self._conn is not None
        self._owed.settle(self._conn, after_key_change=True)
