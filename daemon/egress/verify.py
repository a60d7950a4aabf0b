"""Check an audit log end to end and name the first entry that can no longer be trusted.

What each problem means (``Verification.problem``):

- ``corrupt``            a record is unreadable: not JSON, of no known type, or (sealed
                         logs) it failed authentication — inserted, altered, or copied
                         from another log
- ``edited``             an entry's content no longer matches its hash, or the chain
                         link between two records is broken
- ``deleted``            an entry is missing
- ``reordered``          records are out of order (or one appears twice)
- ``rewritten``          a genuine signed checkpoint disagrees with the records it vouched
                         for: the chain was rebuilt after the fact
- ``truncated``          the checkpoint stored outside the log vouches for more than the
                         log holds
- ``forged-checkpoint``  a checkpoint (or the genesis record) was not signed by the log's
                         key, or was altered
- ``missing-checkpoint`` a checkpoint was cut out of the log, or the one kept outside it
                         is gone (one is written when the log is created)
- ``missing-log``        the log, or its beginning, is gone
- ``wrong-log``          the log on disk is not the one the outside checkpoint vouches for

The checkpoint kept outside the log is updated after every record, and read *before* the
log: a verifier running beside a live daemon never sees it vouch for records it has not
read. Records after it (a crash between the two writes) are reported as not vouched for.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from daemon.egress.chain import GENESIS, entry_hash, signature_problem
from daemon.egress.store import CheckpointStore, RecordStore


@dataclass(frozen=True)
class Verification:
    """The verdict on a log.

    ``bad_seq`` is the first entry the log can no longer vouch for: the edited, missing
    or misplaced entry itself, or, for checkpoint problems, the first entry after the last
    checkpoint that still holds. ``vouched`` counts entries covered by a valid checkpoint;
    ``unvouched`` those after it. ``records`` counts every record (entries, checkpoints,
    the genesis record); ``last_checkpoint`` is the entry count of the last one in the log.
    """

    ok: bool
    entries: int
    checkpoints: int
    head: str
    vouched: int
    bad_seq: int | None = None
    problem: str | None = None
    detail: str = ""
    records: int = 0
    unvouched: int = 0
    last_checkpoint: int = 0
    log_id: str | None = None
    created: float | None = None

    def summary(self) -> str:
        if not self.ok:
            return f"bad at seq {self.bad_seq} ({self.problem}): {self.detail}"
        text = (
            f"ok: {self.entries} entries, {self.checkpoints} signed checkpoints, "
            f"{self.vouched} entries vouched for, head {self.head[:16]}"
        )
        if self.unvouched:
            text += (
                f"; {self.unvouched} entries after seq {self.vouched - 1} are not vouched "
                "for by any checkpoint (written as the daemon stopped?)"
            )
        return text

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _parse(raw: bytes | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        obj = json.loads(raw)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


class _Walk:
    """The state of one pass over the records: hashes seen, and checkpoints that held."""

    def __init__(self, public_key: Ed25519PublicKey, present: set[int]) -> None:
        self.public_key = public_key
        self.present = present  # the entry seqs in the log, to tell a gap from a swap
        self.hashes: list[str] = []  # of every record
        self.entries = 0
        self.vouched_counts: list[int] = [0]
        self.in_log = 0  # entries vouched for by the last checkpoint inside the log
        self.checkpoints = 0
        self.log_id: str | None = None
        self.created: float | None = None

    def result(
        self, problem: str | None = None, seq: int | None = None, detail: str = "", **extra: int
    ) -> Verification:
        return Verification(
            ok=problem is None,
            entries=self.entries,
            checkpoints=self.checkpoints,
            head=self.hashes[-1] if self.hashes else GENESIS,
            vouched=self.vouched_counts[-1],
            bad_seq=seq,
            problem=problem,
            detail=detail,
            records=len(self.hashes),
            last_checkpoint=self.in_log,
            log_id=self.log_id,
            created=self.created,
            **extra,
        )

    def record(self, index: int, item: dict[str, Any] | None) -> Verification | None:
        after = f"after entry {self.entries - 1}" if self.entries else "at the start"
        if item is None:
            return self.result(
                "corrupt",
                self.entries,
                f"record {index} ({after}) is unreadable or failed authentication: it was "
                "inserted, altered, or copied from another log",
            )
        kind, n = item.get("type"), item.get("n")
        if index == 0:
            return self.genesis(item)
        if not isinstance(n, int) or kind not in ("entry", "checkpoint"):
            return self.result("corrupt", self.entries, f"record {index} ({after}) is malformed")
        if kind == "entry":
            return self.entry(item, index, n)
        return self.checkpoint(item, index, n)

    def genesis(self, item: dict[str, Any]) -> Verification | None:
        if item.get("type") != "genesis":
            return self.result(
                "missing-log",
                0,
                "the log does not begin with its genesis record: its beginning was removed",
            )
        problem = signature_problem(item, self.public_key)
        if problem or item.get("n") != 0 or item.get("prev_hash") != GENESIS:
            return self.result(
                "forged-checkpoint", 0, f"the log's genesis record: {problem or 'it is altered'}"
            )
        if entry_hash(item) != item.get("hash") or not isinstance(item.get("log_id"), str):
            return self.result("edited", 0, "the log's genesis record was altered")
        self.log_id, self.created = item["log_id"], item.get("time")
        self.hashes.append(item["hash"])
        return None

    def entry(self, entry: dict[str, Any], index: int, n: int) -> Verification | None:
        expected, seq = self.entries, entry.get("seq")
        if not isinstance(seq, int):
            return self.result("corrupt", expected, f"record {index} is an entry without a seq")
        if seq < expected or (seq > expected and expected in self.present) or n < index:
            return self.result(
                "reordered", expected, f"entry {seq} appears where entry {expected} belongs"
            )
        if seq > expected:
            return self.result("deleted", expected, f"entry {expected} is missing (next is {seq})")
        if n > index:
            return self.result(
                "missing-checkpoint",
                seq,
                f"the checkpoint before entry {seq} was cut out of the log",
            )
        if entry_hash(entry) != entry.get("hash"):
            return self.result("edited", seq, f"entry {seq} no longer matches its hash")
        if entry.get("prev_hash") != self.hashes[-1]:
            bad = max(seq - 1, 0)
            return self.result(
                "edited",
                bad,
                f"entry {seq} does not chain to the record before it: entry {bad} was "
                "rewritten, or records were removed and renumbered",
            )
        self.hashes.append(entry["hash"])
        self.entries += 1
        return None

    def checkpoint(self, checkpoint: dict[str, Any], index: int, n: int) -> Verification | None:
        where = f"after entry {self.entries - 1}"
        if n != index:
            moved = "reordered" if n < index else "deleted"
            return self.result(moved, self.entries, f"the checkpoint {where} is out of place")
        vouched = self.vouched_counts[-1]
        forged = signature_problem(checkpoint, self.public_key)
        if forged:
            return self.result("forged-checkpoint", vouched, f"the checkpoint {where}: {forged}")
        if entry_hash(checkpoint) != checkpoint.get("hash"):
            return self.result("forged-checkpoint", vouched, f"the checkpoint {where} was altered")
        failure = self.vouches(checkpoint, where)
        if failure:
            return failure
        self.hashes.append(checkpoint["hash"])
        self.checkpoints += 1
        self.in_log = checkpoint["count"]
        return None

    def vouches(self, checkpoint: dict[str, Any], where: str) -> Verification | None:
        """Hold a genuine checkpoint against the records read so far."""
        count, records, head = (checkpoint.get(k) for k in ("count", "records", "head"))
        if not (isinstance(count, int) and isinstance(records, int) and isinstance(head, str)):
            return self.result("corrupt", self.entries, f"the checkpoint {where} is malformed")
        if checkpoint.get("log_id") != self.log_id:
            return self.result(
                "wrong-log",
                0,
                f"the log on disk ({self.log_id}) is not the one the checkpoint {where} vouches "
                f"for ({checkpoint.get('log_id')}): the log was replaced",
            )
        if records > len(self.hashes):
            gone = (
                f"entries {self.entries}-{count - 1} were removed"
                if count > self.entries
                else "its last checkpoint was removed"
            )
            return self.result(
                "truncated",
                self.entries,
                f"the log ends after entry {self.entries - 1} but the checkpoint {where} "
                f"vouches for {count} entries: {gone}",
            )
        if records < 1 or self.hashes[records - 1] != head:
            first = max(c for c in self.vouched_counts if c <= count)
            return self.result(
                "rewritten",
                first,
                f"the checkpoint {where} vouches for other records: "
                f"entries {first}-{max(count - 1, first)} were rewritten",
            )
        if count >= self.vouched_counts[-1]:
            self.vouched_counts.append(count)
        return None

    def outside(self, raw: bytes | None) -> Verification:
        vouched = self.vouched_counts[-1]
        if raw is None:
            return self.result(
                "missing-checkpoint",
                vouched,
                "the checkpoint kept outside the log is gone (one is written when a log is "
                "created): it was deleted, or the log was copied here from elsewhere",
            )
        checkpoint = _parse(raw)
        where = "stored outside the log"
        problem = (
            "it is unreadable"
            if checkpoint is None
            else signature_problem(checkpoint, self.public_key)
        )
        if checkpoint is None or problem:
            return self.result("forged-checkpoint", vouched, f"the checkpoint {where}: {problem}")
        failure = self.vouches(checkpoint, where)
        if failure:
            return failure
        return self.result(unvouched=self.entries - self.vouched_counts[-1])


def verify_records(
    records: Iterable[bytes | None], public_key: Ed25519PublicKey, outside: bytes | None
) -> Verification:
    """Walk the chain and every checkpoint, then hold the log against the one kept outside."""
    items = [_parse(raw) for raw in records]
    present = {
        item["seq"]
        for item in items
        if item and item.get("type") == "entry" and isinstance(item.get("seq"), int)
    }
    walk = _Walk(public_key, present)
    if not items:
        what = "the checkpoint kept outside says it existed" if outside else "none was found"
        return walk.result("missing-log", 0, f"the audit log is gone ({what})")
    for index, item in enumerate(items):
        failure = walk.record(index, item)
        if failure:
            return failure
    return walk.outside(outside)


def verify(
    store: RecordStore, public_key: Ed25519PublicKey, checkpoints: CheckpointStore
) -> Verification:
    outside = checkpoints.load()  # first: see the module docstring
    return verify_records(store.records(), public_key, outside)
