"""The vault's SQLite file: durable settings, the schema, and storage errors mapped to ours.

- WAL + ``synchronous=FULL``: a commit is on disk (the WAL is fsynced) before it returns,
  and a process killed at any moment leaves the last committed state.
- ``secure_delete=ON``: deleted rows are overwritten with zeros rather than left in
  free pages; together with a WAL truncation after deletions this removes a deleted
  conversation's wrapped key from the live files.
- ``temp_store=MEMORY``: no temporary files outside the data directory.
- Every row holds ciphertext only; what stays in the clear is listed in ``SCHEMA_SQL``.
"""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from daemon.errors import IntegrityError, StorageFull

log = logging.getLogger(__name__)

BUSY_TIMEOUT_S = 10  # how long a statement waits for the lock
CHECKPOINT_WAIT_MS = 2000  # how long a checkpoint waits for readers of older snapshots

# In the clear: ids, key ids, conversation created/updated times (for listing and
# retention) and record sizes. Titles, messages, roles, message times, setting and
# plugin-data names and values are sealed.
SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS header (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    vault_id TEXT NOT NULL,
    schema INTEGER NOT NULL,
    kek_kind TEXT NOT NULL,
    kek_id TEXT NOT NULL,
    kek_params TEXT NOT NULL,
    master_id TEXT NOT NULL,
    wrapped_master BLOB NOT NULL
);
-- KEKs that may exist outside this file (keychain items) but that the header does not use:
-- left by an interrupted rotation, discarded at the next open.
CREATE TABLE IF NOT EXISTS kek_journal (kek_id TEXT PRIMARY KEY, kind TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS data_keys (
    key_id TEXT PRIMARY KEY,
    purpose TEXT NOT NULL,
    wrapped BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY,
    key_id TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    sealed BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS conversations_updated ON conversations (updated);
-- AUTOINCREMENT: a message id is never reused, even after its conversation is deleted.
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    conv_id TEXT NOT NULL,
    sealed BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_conv ON messages (conv_id, id);
CREATE TABLE IF NOT EXISTS records (
    lookup BLOB PRIMARY KEY,
    key_id TEXT NOT NULL,
    sealed BLOB NOT NULL
);
"""


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating if needed, mode 0600) the vault file with the durable settings."""
    with storage_errors():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Create the file ourselves so it is private from the first byte; SQLite gives
        # the -wal and -shm files the same mode.
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        conn = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_S
        )
        try:
            conn.execute("PRAGMA secure_delete = ON")
            conn.execute("PRAGMA temp_store = MEMORY")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal":
                raise IntegrityError(f"The vault file cannot use write-ahead logging ({mode}).")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA cell_size_check = ON")
        except BaseException:
            conn.close()
            raise
        return conn


@contextmanager
def storage_errors() -> Iterator[None]:
    """Map a full disk to StorageFull and a damaged file to IntegrityError."""
    try:
        yield
    except sqlite3.Error as exc:
        primary = (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF
        if primary == sqlite3.SQLITE_FULL:
            raise _full() from exc
        if primary in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
            raise IntegrityError(
                "The vault file is damaged (SQLite reports corruption). Restore it from a backup.",
                reason="corrupt_file",
            ) from exc
        raise
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise _full() from exc
        raise


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE … COMMIT; anything raised (a full disk at COMMIT too) rolls back."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            with suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        raise


def truncate_wal(conn: sqlite3.Connection) -> bool:
    """Copy the WAL into the file and empty it, so old page images do not linger there;
    True when that happened.

    False when it could not finish: another connection still reads an older snapshot
    (SQLite then answers "busy" rather than raising), or the disk is full. Until it
    finishes, the main file keeps the pages a deletion replaced: see :class:`OwedCheckpoint`.
    """
    conn.execute(f"PRAGMA busy_timeout = {CHECKPOINT_WAIT_MS}")  # how long readers may hold it
    try:
        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    except sqlite3.OperationalError:
        return False
    finally:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_S * 1000}")
    return int(busy) == 0


class OwedCheckpoint:
    """A marker file beside the vault: a crypto-shred or rotation whose WAL checkpoint
    could not finish, so ``vault.db`` itself may still hold what was deleted.

    It is written (durably) when a checkpoint after a key change fails, and honored on
    the next open, write or close: the checkpoint is retried until it succeeds, and only
    then is the marker removed. It survives a crash, so a restart finishes the job.
    """

    def __init__(self, db_path: Path) -> None:
        self.path = db_path.with_name(db_path.name + "-checkpoint-owed")

    @property
    def owed(self) -> bool:
        return self.path.exists()

    def settle(self, conn: sqlite3.Connection, *, after_key_change: bool = False) -> bool:
        """Checkpoint now if a key change needs it (or one is owed); True when nothing
        is owed any more."""
        if not (after_key_change or self.owed):
            return True
        if truncate_wal(conn):
            if self.owed:
                self.path.unlink()
                _fsync_dir(self.path.parent)
                log.info("the owed vault checkpoint is done: deleted data is gone from vault.db")
            return True
        if not self.owed:
            with suppress(OSError):  # a full disk: the warning below still says it
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
                os.fsync(fd)
                os.close(fd)
                _fsync_dir(self.path.parent)
        log.warning(
            "vault.db may still hold deleted data: another program reads an old snapshot "
            "of the vault (or the disk is full), so its write-ahead log cannot be folded "
            "in yet; Hearth retries at the next write, start or stop"
        )
        return False


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _full() -> StorageFull:
    return StorageFull(
        "The disk holding the vault is full: nothing was stored. Free some space and try again."
    )
