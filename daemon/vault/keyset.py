"""The unlocked key hierarchy of one vault: KEK → master key → data keys.

The header row holds the master key wrapped by the KEK; ``data_keys`` holds one data
key per conversation (plus one for settings and plugin data), each wrapped by the
master key. Every change to the top of that hierarchy goes through ``rekey``, one
journaled protocol that a SIGKILL at any point leaves with exactly one usable KEK:

1. a new KEK's id is committed to ``kek_journal`` before the KEK exists anywhere;
2. the KEK is created (for the keychain: an item is written);
3. one SQLite transaction makes the change (delete rows, re-encrypt records), re-wraps
   the data keys under the new master key, writes the header, and moves the journal
   entry from the new KEK to the old one;
4. after the commit the old KEK is discarded and its journal entry removed.

A crash before 3 leaves the old header and a journaled, unused new KEK; a crash after
it leaves the new header and a journaled old KEK. Either way the next ``unlock``
discards what the journal lists.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from daemon.errors import IntegrityError, VaultLocked, WrongPassphrase
from daemon.vault.crypto import SCHEMA, Sealer, new_id, new_key
from daemon.vault.db import transaction
from daemon.vault.keys import KeySource, discard_orphan

Step = Callable[[str], None]
RECORDS = "records"  # purpose of the data key for settings and plugin data


def no_step(name: str) -> None:
    """The default fault-injection hook: do nothing."""


@dataclass(frozen=True)
class Header:
    vault_id: str
    schema: int
    kek_kind: str
    kek_id: str
    kek_params: dict[str, Any]
    master_id: str
    wrapped_master: bytes

    @property
    def master_row(self) -> str:
        return master_row(self.vault_id, self.master_id)


def master_row(vault_id: str, master_id: str) -> str:
    """The row the wrapped master key is bound to: this vault, this master key."""
    return f"{vault_id}/{master_id}"


def read_header(conn: sqlite3.Connection) -> Header | None:
    try:
        row = conn.execute(
            "SELECT vault_id, schema, kek_kind, kek_id, kek_params, master_id, wrapped_master"
            " FROM header WHERE id = 1"
        ).fetchone()
    except sqlite3.OperationalError:
        return None  # no schema yet
    if row is None:
        return None
    return Header(row[0], row[1], row[2], row[3], json.loads(row[4]), row[5], bytes(row[6]))


class KeySet:
    """Holds the KEK and master key in memory while the vault is open; hands out data keys."""

    def __init__(self, conn: sqlite3.Connection, source: KeySource, step: Step) -> None:
        self._conn = conn
        self.source = source
        self._step = step
        self.header: Header | None = None
        self._kek = b""
        self._master: Sealer | None = None
        self._master_key = b""
        self._data: dict[str, Sealer] = {}

    @classmethod
    def unlock(
        cls, conn: sqlite3.Connection, header: Header, source: KeySource, step: Step
    ) -> KeySet:
        """Open the hierarchy; a wrong key raises before anything is written."""
        if header.schema != SCHEMA:
            raise VaultLocked(
                f"This vault uses storage schema {header.schema}; this Hearth reads {SCHEMA}. "
                "Update Hearth to open it.",
                reason="unsupported_schema",
            )
        if header.kek_kind != source.kind:
            raise VaultLocked(
                f"This vault is protected by a {header.kek_kind}, not a {source.kind}.",
                reason="wrong_key_source",
                needs=header.kek_kind,
            )
        kek = source.load_kek(header.kek_id, header.kek_params)
        try:
            master = Sealer(kek, header.kek_id).open(
                "header", header.master_row, header.wrapped_master
            )
        except IntegrityError:
            if source.kind == "passphrase":
                raise WrongPassphrase("The passphrase is wrong: the vault stays locked.") from None
            raise IntegrityError(
                "The key in the keychain does not open this vault's header (the header was "
                "altered, or the keychain item belongs to another vault).",
                table="header",
                row="1",
            ) from None
        keys = cls(conn, source, step)
        keys.header, keys._kek, keys._master_key = header, kek, master
        keys._master = Sealer(master, header.master_id)
        keys.clean_journal()
        return keys

    @classmethod
    def initialize(cls, conn: sqlite3.Connection, source: KeySource, step: Step) -> KeySet:
        """Create the hierarchy of a new vault (header, master key, records key)."""
        keys = cls(conn, source, step)
        keys.clean_journal()  # KEKs of an earlier, interrupted creation
        keys.rekey(source, fresh_kek=True, fresh_master=True, change=keys.add_records_key)
        return keys

    def clean_journal(self) -> None:
        """Discard KEKs an interrupted rotation left behind.

        Best effort: an entry whose store is unreachable, or that cannot be removed now
        (a full disk), stays for the next open — it never keeps the vault from opening.
        """
        current = self.header.kek_id if self.header else None
        for kek_id, kind in self._conn.execute("SELECT kek_id, kind FROM kek_journal").fetchall():
            if kek_id == current or discard_orphan(kind, kek_id, self.source):
                with suppress(sqlite3.OperationalError), transaction(self._conn):
                    self._conn.execute("DELETE FROM kek_journal WHERE kek_id = ?", (kek_id,))

    def sealer(self, key_id: str) -> Sealer:
        """The data key ``key_id``, unwrapped once and cached."""
        found = self._data.get(key_id)
        if found is None:
            row = self._conn.execute(
                "SELECT wrapped FROM data_keys WHERE key_id = ?", (key_id,)
            ).fetchone()
            if row is None:
                raise IntegrityError(
                    f"The data key {key_id} is missing from the vault.",
                    table="data_keys",
                    row=key_id,
                )
            found = Sealer(self._require_master().open("data_keys", key_id, row[0]), key_id)
            self._data[key_id] = found
        return found

    def add_data_key(self, purpose: str) -> Sealer:
        """A new data key wrapped by the current master key (inside a transaction)."""
        key_id, key = new_id(), new_key()
        wrapped = self._require_master().seal("data_keys", key_id, key)
        self._conn.execute("INSERT INTO data_keys VALUES (?, ?, ?)", (key_id, purpose, wrapped))
        self._data[key_id] = Sealer(key, key_id)
        return self._data[key_id]

    def add_records_key(self) -> None:
        self.add_data_key(RECORDS)

    def drop_data_key(self, key_id: str) -> None:
        """Delete a wrapped data key (inside a txn): what it sealed can never be opened again."""
        self._conn.execute("DELETE FROM data_keys WHERE key_id = ?", (key_id,))
        self._data.pop(key_id, None)

    def records_key(self) -> Sealer:
        row = self._conn.execute(
            "SELECT key_id FROM data_keys WHERE purpose = ?", (RECORDS,)
        ).fetchone()
        if row is None:
            raise IntegrityError(
                "The vault's settings key is missing.", table="data_keys", row=RECORDS
            )
        return self.sealer(row[0])

    def rekey(
        self,
        source: KeySource,
        *,
        fresh_kek: bool,
        fresh_master: bool,
        change: Callable[[], None] = lambda: None,
    ) -> None:
        """Apply ``change`` and a new top of the hierarchy in one crash-atomic step.

        ``change`` works under the current master key (new data keys are wrapped by it);
        the same transaction then re-wraps every data key under the new master key.
        """
        old = self.header
        if fresh_kek:
            kek_id = new_id()
            with transaction(self._conn):
                self._conn.execute("INSERT INTO kek_journal VALUES (?, ?)", (kek_id, source.kind))
            self._step("journal")
            kek, params = source.create_kek(kek_id)
            self._step("kek")
        else:
            assert old is not None
            kek_id, kek, params = old.kek_id, self._kek, old.kek_params
        if fresh_master or self._master is None:
            master_key = new_key()
            master = Sealer(master_key, new_id())
        else:
            master_key, master = self._master_key, self._master
        vault_id = old.vault_id if old else new_id()
        wrapped = Sealer(kek, kek_id).seal(
            "header", master_row(vault_id, master.key_id), master_key
        )
        header = Header(vault_id, SCHEMA, source.kind, kek_id, params, master.key_id, wrapped)
        if self._master is None:  # a new vault: nothing to re-wrap
            self._master, self._master_key = master, master_key
        # On failure nothing is discarded here: if the commit reached the disk after all
        # (a failed fsync), the journal tells the next unlock which KEK is the live one.
        with transaction(self._conn):
            change()
            if master is not self._master:
                self._rewrap_data_keys(master)
            self._write_header(header)
            if fresh_kek:
                self._conn.execute("DELETE FROM kek_journal WHERE kek_id = ?", (kek_id,))
                if old is not None:
                    self._conn.execute(
                        "INSERT OR REPLACE INTO kek_journal VALUES (?, ?)",
                        (old.kek_id, old.kek_kind),
                    )
            self._step("header")
        self._step("commit")
        old_source = self.source
        self.source, self.header, self._kek = source, header, kek
        self._master, self._master_key = master, master_key
        # Committed: from here on, cleanup only. What fails now is retried at the next open.
        if fresh_kek and old is not None and discard_orphan(old.kek_kind, old.kek_id, old_source):
            with suppress(sqlite3.OperationalError), transaction(self._conn):
                self._conn.execute("DELETE FROM kek_journal WHERE kek_id = ?", (old.kek_id,))
            self._step("discard")

    def _rewrap_data_keys(self, master: Sealer) -> None:
        current = self._require_master()
        rows = self._conn.execute("SELECT key_id, wrapped FROM data_keys").fetchall()
        for key_id, wrapped in rows:
            key = current.open("data_keys", key_id, wrapped)
            self._conn.execute(
                "UPDATE data_keys SET wrapped = ? WHERE key_id = ?",
                (master.seal("data_keys", key_id, key), key_id),
            )

    def _write_header(self, h: Header) -> None:
        self._conn.execute(
            "INSERT OR REPLACE INTO header VALUES (1, ?, ?, ?, ?, ?, ?, ?)",
            (
                h.vault_id,
                h.schema,
                h.kek_kind,
                h.kek_id,
                json.dumps(h.kek_params),
                h.master_id,
                h.wrapped_master,
            ),
        )

    def _require_master(self) -> Sealer:
        if self._master is None:
            raise VaultLocked("The vault is locked.")
        return self._master
