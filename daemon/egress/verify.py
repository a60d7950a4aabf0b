"""Check an audit log end to end and name the first entry that can no longer be trusted.

What each problem means (``Verification.problem``):

- ``corrupt``            a record is not a JSON object of a known type
- ``edited``             an entry's content no longer matches its hash, or the chain
                         link between two entries is broken
- ``deleted``            a sequence number is missing
- ``reordered``          entries are out of order (or one appears twice)
- ``rewritten``          a genuine signed checkpoint disagrees with the entries it vouched
                         for: the chain was rebuilt after the fact
- ``truncated``          the checkpoint stored outside the log vouches for more entries
                         than the log holds
- ``forged-checkpoint``  a checkpoint was not signed by the log's key, or was altered
- ``missing-checkpoint`` the log has signed checkpoints but none is stored outside it

The checkpoint kept outside the log is read *before* the log: the writer appends a
checkpoint to the log before saving it outside, so a verifier running beside a live
daemon never sees a checkpoint newer than the records it reads.
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
    checkpoint that still holds. ``vouched`` counts entries covered by a valid checkpoint.
    """

    ok: bool
    entries: int
    checkpoints: int
    head: str
    vouched: int
    bad_seq: int | None = None
    problem: str | None = None
    detail: str = ""

    def summary(self) -> str:
        if self.ok:
            return (
                f"ok: {self.entries} entries, {self.checkpoints} signed checkpoints, "
                f"{self.vouched} entries vouched for, head {self.head[:16]}"
            )
        return f"bad at seq {self.bad_seq} ({self.problem}): {self.detail}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _parse(raw: bytes) -> dict[str, Any] | None:
    try:
        obj = json.loads(raw)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


class _Walk:
    """The state of one pass over the records: entries seen, and checkpoints that held."""

    def __init__(self, public_key: Ed25519PublicKey) -> None:
        self.public_key = public_key
        self.hashes: list[str] = []
        self.vouched_counts: list[int] = [0]
        self.checkpoints = 0

    @property
    def head(self) -> str:
        return self.hashes[-1] if self.hashes else GENESIS

    def result(
        self, problem: str | None = None, seq: int | None = None, detail: str = ""
    ) -> Verification:
        return Verification(
            ok=problem is None,
            entries=len(self.hashes),
            checkpoints=self.checkpoints,
            head=self.head,
            vouched=self.vouched_counts[-1],
            bad_seq=seq,
            problem=problem,
            detail=detail,
        )

    def entry(self, entry: dict[str, Any], present: set[int]) -> Verification | None:
        expected, seq = len(self.hashes), entry.get("seq")
        if not isinstance(seq, int):
            return self.result(
                "corrupt", expected, f"the entry after seq {expected - 1} has no seq"
            )
        if seq < expected or (seq > expected and expected in present):
            return self.result(
                "reordered", expected, f"entry {seq} appears where entry {expected} belongs"
            )
        if seq > expected:
            return self.result("deleted", expected, f"entry {expected} is missing (next is {seq})")
        if entry_hash(entry) != entry.get("hash"):
            return self.result("edited", seq, f"entry {seq} no longer matches its hash")
        if entry.get("prev_hash") != self.head:
            bad = max(seq - 1, 0)
            return self.result(
                "edited",
                bad,
                f"entry {seq} does not chain to the entry before it: entry {bad} was "
                "rewritten, or entries were removed and renumbered",
            )
        self.hashes.append(entry["hash"])
        return None

    def checkpoint(self, checkpoint: dict[str, Any], where: str) -> Verification | None:
        vouched = self.vouched_counts[-1]
        problem = signature_problem(checkpoint, self.public_key)
        if problem:
            return self.result("forged-checkpoint", vouched, f"the checkpoint {where}: {problem}")
        count, head = checkpoint["count"], checkpoint["head"]
        if count > len(self.hashes):
            return self.result(
                "truncated",
                len(self.hashes),
                f"the log ends after {len(self.hashes)} entries but the checkpoint {where} "
                f"vouches for {count}: entries {len(self.hashes)}-{count - 1} were removed",
            )
        if count > 0 and self.hashes[count - 1] != head:
            first = max(c for c in self.vouched_counts if c <= count)
            return self.result(
                "rewritten",
                first,
                f"the checkpoint {where} vouches for a different entry {count - 1}: "
                f"entries {first}-{count - 1} were rewritten",
            )
        if count >= vouched:
            self.vouched_counts.append(count)
        return None


def verify_records(
    records: Iterable[bytes], public_key: Ed25519PublicKey, outside: bytes | None
) -> Verification:
    """Walk the chain and every checkpoint, then hold the log against the one kept outside."""
    items = [_parse(raw) for raw in records]
    present = {
        item["seq"]
        for item in items
        if item and item.get("type") == "entry" and isinstance(item.get("seq"), int)
    }
    walk = _Walk(public_key)
    for item in items:
        expected = len(walk.hashes)
        kind = item.get("type") if item else None
        failure: Verification | None
        if item is not None and kind == "entry":
            failure = walk.entry(item, present)
        elif item is not None and kind == "checkpoint":
            failure = walk.checkpoint(item, f"after entry {expected - 1}")
            walk.checkpoints += failure is None
        else:
            failure = walk.result(
                "corrupt", expected, f"the record after entry {expected - 1} is unreadable"
            )
        if failure:
            return failure
    if outside is None:
        if walk.checkpoints:
            return walk.result(
                "missing-checkpoint",
                walk.vouched_counts[-1],
                "the log has signed checkpoints but the one stored outside it is gone",
            )
        return walk.result()
    checkpoint = _parse(outside)
    if checkpoint is None:
        return walk.result(
            "forged-checkpoint",
            walk.vouched_counts[-1],
            "the checkpoint stored outside is unreadable",
        )
    return walk.checkpoint(checkpoint, "stored outside the log") or walk.result()


def verify(
    store: RecordStore, public_key: Ed25519PublicKey, checkpoints: CheckpointStore
) -> Verification:
    outside = checkpoints.load()  # first: see the module docstring
    return verify_records(store.records(), public_key, outside)
