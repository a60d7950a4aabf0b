"""The append-only, hash-chained record of every outbound call, allowed or not.

Each entry records where a call went and how it ended, never what it carried: the
fields are fixed (:data:`ENTRY_FIELDS`), so a query string, header or body cannot be
logged by accident. Every ``checkpoint_every`` entries and at close, a signed checkpoint
(count, head hash) goes into the log and into a store outside it; see verify.py for
what that catches. The signing key belongs to the daemon (keychain or vault).

Rolling the outside checkpoint back to an older genuine one is not detectable here:
keeping it where only the daemon can write (keychain, vault) is what guards that.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from daemon.egress.chain import GENESIS, canonical, entry_hash, sign_checkpoint
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
        "phase",  # intent | outcome | blocked | recovered
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


class AuditLog:
    """Writes entries and checkpoints; thread-safe, one writer per log.

    Opening an existing log verifies it first and refuses (:class:`IntegrityError`) if it
    was tampered with: appending would otherwise bury the evidence under fresh
    checkpoints.
    """

    def __init__(
        self,
        store: RecordStore,
        checkpoints: CheckpointStore,
        key: Ed25519PrivateKey,
        *,
        checkpoint_every: int = 64,
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
        state = self.verify()
        if not state.ok:
            raise IntegrityError(
                f"the network audit log failed verification: {state.summary()}. "
                "Keep it as evidence, move it aside, and restart to begin a new log.",
                **state.to_dict(),
            )
        self._count = state.entries
        self._head = state.head
        self._checkpointed = state.vouched
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
    ) -> AuditLog:
        """A log in ``path`` (one JSON line per record) with its checkpoint kept apart."""
        if checkpoint_path.absolute() == path.absolute():
            raise ValueError("the checkpoint must be stored apart from the log")
        return cls(
            FileRecordStore(path),
            FileCheckpointStore(checkpoint_path),
            key,
            checkpoint_every=checkpoint_every,
        )

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
        """Chain one entry onto the log, durably, and return it (with its ``seq``)."""
        _check_fields(fields)
        with self._writing():
            if self._closed:
                raise ValueError("the audit log is closed")
            entry: dict[str, Any] = {name: None for name in ENTRY_FIELDS}
            entry.update(fields)
            entry.update(
                type="entry",
                seq=self._count,
                time=time.time(),
                monotonic=time.monotonic(),
                prev_hash=self._head,
            )
            entry["hash"] = entry_hash(entry)
            self._store.append(canonical(entry))
            self._count += 1
            self._head = entry["hash"]
            if self._count - self._checkpointed >= self._every:
                self._checkpoint()
        return entry

    def checkpoint(self) -> dict[str, Any] | None:
        """Sign the current head now (None when nothing was added since the last one)."""
        with self._writing():
            return self._checkpoint()

    def _checkpoint(self) -> dict[str, Any] | None:
        if self._count == self._checkpointed or self._head == GENESIS:
            return None
        checkpoint = sign_checkpoint(self._key, self._count, self._head, time.time())
        record = canonical(checkpoint)
        self._store.append(record)  # in the log first, then outside: see verify.py
        self._checkpoints.save(record)
        self._checkpointed = self._count
        return checkpoint

    def entries(self) -> Iterator[dict[str, Any]]:
        """The entries as stored (checkpoints left out), for display and tests."""
        for raw in self._store.records():
            record = json.loads(raw)
            if record.get("type") == "entry":
                yield record

    def verify(self) -> Verification:
        return verify(self._store, self.public_key, self._checkpoints)

    def close(self) -> None:
        """Checkpoint what is left and close; safe to call twice."""
        with self._writing():
            if self._closed:
                return
            self._checkpoint()
            self._closed = True
            self._store.close()
