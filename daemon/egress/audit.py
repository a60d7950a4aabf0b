"""The append-only, hash-chained record of every outbound call, allowed or not.

Each entry records where a call went and how it ended, never what it carried: the
fields are fixed (:data:`ENTRY_FIELDS`), so a query string, header or body cannot be
logged by accident. A log begins with a signed genesis record naming its ``log_id``;
every ``checkpoint_every`` entries and at close a signed checkpoint goes into the chain;
and after *every* record a signed checkpoint of the whole log (entries, records, head)
is saved outside it. So cutting entries off the end, cutting checkpoints out, or
deleting the log all fail verification (verify.py). The signing key belongs to the
daemon (keychain, or sealed files).

Not detectable here: rolling the log *and* the outside checkpoint back together to an
older genuine pair. Keeping the checkpoint where only the daemon can write (the
keychain) is what guards that; in file mode both sit in the data folder.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from daemon.egress.chain import GENESIS, canonical, entry_hash, sign, sign_checkpoint
from daemon.egress.store import (
    CheckpointStore,
    FileCheckpointStore,
    FileRecordStore,
    RecordStore,
)
from daemon.egress.verify import Verification, verify
from daemon.errors import IntegrityError

ENTRY_FIELDS = frozenset(
    {
        "phase",  # intent | outcome | blocked | policy | recovered
        "caller",
        "purpose",
        "method",
        "scheme",
        "host",
        "port",
        "path",  # without the query string
        "bytes_up",
        "bytes_down",
        "status",
        "duration_ms",
        "decision",  # allow | deny | block
        "rule",
        "error",  # an exception class name, never its message
        "stack",  # blocked calls: where the attempt came from
        "intent",  # outcome entries: the seq of their intent entry
        "change",  # policy entries: what the user changed, e.g. "mode offline -> ask"
        "proxy",  # intent entries: the proxy (host:port) the call went through, if any
    }
)
_SCALARS = (str, int, float, type(None))


def _check_fields(fields: Mapping[str, object]) -> None:
    unknown = set(fields) - ENTRY_FIELDS
    if unknown:
        raise ValueError(f"not audit fields: {sorted(unknown)}")
    for name, value in fields.items():
        ok = isinstance(value, _SCALARS) or (
            isinstance(value, list) and all(isinstance(v, str) for v in value)
        )
        if not ok:
            raise ValueError(f"audit field {name} must be a string, number or list of strings")


def _is_empty(store: RecordStore) -> bool:
    nothing = object()
    return next(iter(store.records()), nothing) is nothing


class AuditLog:
    """Writes entries and checkpoints; thread-safe, one writer per log.

    Opening an existing log verifies it first and refuses (:class:`IntegrityError`) if it
    was tampered with: appending would otherwise bury the evidence under fresh
    checkpoints. ``create`` says that no log may exist yet (the signing key is new): only
    then is an absent log begun; otherwise an absent log is a deleted one. ``previous``
    (the id, entries and problem of a log that failed and was set aside) begins a new
    log in an empty store even though the old log's outside checkpoint is still there,
    and its genesis record names the old one.
    """

    def __init__(
        self,
        store: RecordStore,
        checkpoints: CheckpointStore,
        key: Ed25519PrivateKey,
        *,
        checkpoint_every: int = 64,
        create: bool = False,
        previous: Mapping[str, object] | None = None,
    ) -> None:
        if checkpoint_every < 1:
            raise ValueError("checkpoint_every must be at least 1")
        self._store = store
        self._checkpoints = checkpoints
        self._key = key
        self._every = checkpoint_every
        self._lock = threading.RLock()
        self._busy = False
        self._closed = False
        torn = store.discard_torn_tail()
        if create and _is_empty(store) and (previous or checkpoints.load() is None):
            self._begin(dict(previous) if previous else None)
        state = self.verify()
        if not state.ok:
            raise IntegrityError(
                f"the network audit log failed verification: {state.summary()}. "
                "Keep it as evidence; `hearth audit reset` sets it aside and begins a new log.",
                **state.to_dict(),
            )
        self._adopt(state)
        if torn:
            self.append({"phase": "recovered", "error": f"discarded {torn} unfinished bytes"})

    @classmethod
    def open_files(
        cls,
        path: Path,
        checkpoint_path: Path,
        key: Ed25519PrivateKey,
        *,
        checkpoint_every: int = 64,
        create: bool = False,
    ) -> AuditLog:
        """A log in ``path`` (one JSON line per record) with its checkpoint kept apart."""
        if checkpoint_path.absolute() == path.absolute():
            raise ValueError("the checkpoint must be stored apart from the log")
        return cls(
            FileRecordStore(path),
            FileCheckpointStore(checkpoint_path),
            key,
            checkpoint_every=checkpoint_every,
            create=create,
        )

    def _begin(self, previous: dict[str, object] | None) -> None:
        """Write the genesis record, and the outside checkpoint that says a log exists."""
        self.log_id = os.urandom(8).hex()
        genesis = sign(
            self._key,
            {
                "type": "genesis",
                "n": 0,
                "log_id": self.log_id,
                "time": time.time(),
                "previous": previous,
                "prev_hash": GENESIS,
            },
        )
        genesis["hash"] = entry_hash(genesis)
        self._store.append(canonical(genesis), self.log_id, 0)
        self._count, self._records, self._head = 0, 1, genesis["hash"]
        self._vouch()

    def _adopt(self, state: Verification) -> None:
        assert state.log_id is not None
        self.log_id = state.log_id
        self._count, self._records, self._head = state.entries, state.records, state.head
        self._checkpointed = state.last_checkpoint

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self._key.public_key()

    @property
    def count(self) -> int:
        return self._count

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """Hold the writer lock. A re-entry from the same thread (a store whose own socket
        the guard refused and reported) fails at once instead of deadlocking."""
        with self._lock:
            if self._busy:
                raise RuntimeError("the audit log was re-entered while writing")
            self._busy = True
            try:
                yield
            finally:
                self._busy = False

    def append(self, fields: Mapping[str, object]) -> dict[str, Any]:
        """Chain one entry onto the log, durably, vouch for it outside, and return it
        (with its ``seq``)."""
        _check_fields(fields)
        with self._writing():
            if self._closed:
                raise ValueError("the audit log is closed")
            entry: dict[str, Any] = {name: None for name in ENTRY_FIELDS}
            entry.update(fields)
            entry.update(
                type="entry",
                n=self._records,
                seq=self._count,
                time=time.time(),
                monotonic=time.monotonic(),
                prev_hash=self._head,
            )
            entry["hash"] = entry_hash(entry)
            self._write(entry)
            self._count += 1
            if self._count - self._checkpointed >= self._every:
                self._checkpoint()
            self._vouch()
        return entry

    def _write(self, record: dict[str, Any]) -> None:
        self._store.append(canonical(record), self.log_id, record["n"])
        self._records += 1
        self._head = record["hash"]

    def _vouch(self) -> None:
        """Save the signed state of the whole log outside it (after every record)."""
        outside = sign_checkpoint(
            self._key, self.log_id, self._count, self._records, self._head, time.time()
        )
        self._checkpoints.save(canonical(outside))

    def checkpoint(self) -> dict[str, Any] | None:
        """Sign the current head into the log now (None when nothing was added since)."""
        with self._writing():
            checkpoint = self._checkpoint()
            if checkpoint is not None:
                self._vouch()
            return checkpoint

    def _checkpoint(self) -> dict[str, Any] | None:
        if self._count == self._checkpointed:
            return None
        checkpoint = sign(
            self._key,
            {
                "type": "checkpoint",
                "n": self._records,
                "log_id": self.log_id,
                "count": self._count,
                "records": self._records,
                "head": self._head,
                "time": time.time(),
                "prev_hash": self._head,
            },
        )
        checkpoint["hash"] = entry_hash(checkpoint)
        self._write(checkpoint)
        self._checkpointed = self._count
        return checkpoint

    def entries(self) -> Iterator[dict[str, Any]]:
        """The entries as stored (other records left out), for display and tests."""
        for raw in self._store.records():
            record = json.loads(raw) if raw is not None else {}
            if record.get("type") == "entry":
                yield record

    def verify(self) -> Verification:
        return verify(self._store, self.public_key, self._checkpoints)

    def close(self) -> None:
        """Checkpoint what is left and close; safe to call twice."""
        with self._writing():
            if self._closed:
                return
            if self._checkpoint() is not None:
                self._vouch()
            self._closed = True
            self._store.close()
