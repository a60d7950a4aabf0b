"""The audit log: a hash chain with signed checkpoints, and verify() naming the first bad seq."""

from __future__ import annotations

import itertools
import json
import threading
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from daemon.egress.audit import AuditLog
from daemon.egress.chain import GENESIS, canonical, entry_hash, sign_checkpoint
from daemon.egress.store import FileCheckpointStore, FileRecordStore
from daemon.egress.verify import verify
from daemon.errors import IntegrityError

from .helpers import read_entries

EVERY = 8
ENTRIES = 20  # checkpoints after entries 8, 16 and (at close) 20


@pytest.fixture
def written(log_path: Path, checkpoint_path: Path, key: Ed25519PrivateKey) -> Path:
    """A closed log of 20 entries, as the daemon leaves it."""
    log = AuditLog.open_files(log_path, checkpoint_path, key, checkpoint_every=EVERY)
    for i in range(ENTRIES):
        log.append(
            {"phase": "intent", "caller": "models.pull", "host": f"h{i}.example", "port": 443}
        )
    log.close()
    return log_path


class Tampered:
    """A written log opened for tampering: edit ``records``, then ask for the verdict."""

    def __init__(self, log_path: Path, checkpoint_path: Path, key: Ed25519PrivateKey) -> None:
        self.log_path, self.checkpoint_path, self.key = log_path, checkpoint_path, key
        self.records: list[Any] = [json.loads(r) for r in log_path.read_bytes().splitlines()]

    def at(self, seq: int) -> int:
        """The position of entry ``seq`` among the records."""
        return next(i for i, r in enumerate(self.records) if r.get("seq") == seq)

    def save(self) -> None:
        raw = [canonical(r) if isinstance(r, dict) else r for r in self.records]
        self.log_path.write_bytes(b"".join(r + b"\n" for r in raw))

    def verdict(self) -> tuple[str | None, int | None]:
        self.save()
        result = verify(
            FileRecordStore(self.log_path),
            self.key.public_key(),
            FileCheckpointStore(self.checkpoint_path),
        )
        assert not result.ok and f"bad at seq {result.bad_seq}" in result.summary()
        return result.problem, result.bad_seq


@pytest.fixture
def log(written: Path, checkpoint_path: Path, key: Ed25519PrivateKey) -> Tampered:
    return Tampered(written, checkpoint_path, key)


def test_an_untouched_log_verifies_and_summarizes_itself(
    written: Path, checkpoint_path: Path, key: Ed25519PrivateKey
) -> None:
    result = verify(
        FileRecordStore(written), key.public_key(), FileCheckpointStore(checkpoint_path)
    )
    assert result.ok, result.summary()
    assert (result.entries, result.checkpoints, result.vouched) == (ENTRIES, 3, ENTRIES)
    assert result.summary().startswith("ok: 20 entries, 3 signed checkpoints")


def test_each_entry_chains_to_the_one_before_it_across_restarts(
    log_path: Path, checkpoint_path: Path, key: Ed25519PrivateKey
) -> None:
    for run in range(2):
        log = AuditLog.open_files(log_path, checkpoint_path, key, checkpoint_every=EVERY)
        for _ in range(3):
            log.append({"phase": "intent", "caller": f"run{run}"})
        log.close()
    entries = read_entries(log_path)
    assert list(log.entries()) == entries  # checkpoints left out
    assert [e["seq"] for e in entries] == [0, 1, 2, 3, 4, 5]
    assert entries[0]["prev_hash"] == GENESIS
    assert all(b["prev_hash"] == a["hash"] for a, b in itertools.pairwise(entries))
    assert all(entry_hash(e) == e["hash"] for e in entries)


def test_a_signed_checkpoint_is_written_every_n_entries_and_at_close_and_kept_outside_it(
    log: Tampered,
) -> None:
    checkpoints = [r for r in log.records if r["type"] == "checkpoint"]
    assert [c["count"] for c in checkpoints] == [8, 16, 20]
    assert json.loads(log.checkpoint_path.read_bytes()) == checkpoints[-1]
    assert checkpoints[-1]["head"] == log.records[log.at(ENTRIES - 1)]["hash"]


def test_an_entry_takes_only_the_known_fields_so_headers_or_bodies_cannot_be_logged(
    audit: AuditLog,
) -> None:
    with pytest.raises(ValueError, match="not audit fields"):
        audit.append({"phase": "intent", "headers": "Authorization: Bearer sk-secret"})
    with pytest.raises(ValueError):
        audit.append({"phase": "intent", "path": {"query": "q=1"}})
    assert audit.count == 0


def test_an_edited_entry_is_named(log: Tampered) -> None:
    log.records[log.at(5)]["host"] = "innocent.example"
    assert log.verdict() == ("edited", 5)


def test_an_edited_entry_with_a_recomputed_hash_breaks_the_link_to_the_next(log: Tampered) -> None:
    entry = log.records[log.at(5)]
    entry["host"] = "innocent.example"
    entry["hash"] = entry_hash(entry)
    assert log.verdict() == ("edited", 5)


def test_a_deleted_entry_is_named(log: Tampered) -> None:
    del log.records[log.at(12)]
    assert log.verdict() == ("deleted", 12)


def test_reordered_entries_are_named(log: Tampered) -> None:
    a, b = log.at(3), log.at(4)
    log.records[a], log.records[b] = log.records[b], log.records[a]
    assert log.verdict() == ("reordered", 3)


def test_a_truncated_log_is_caught_by_the_checkpoint_kept_outside_it(log: Tampered) -> None:
    del log.records[log.at(18) :]  # entries 18, 19 and the last checkpoint
    assert log.verdict() == ("truncated", 18)


def test_a_chain_rebuilt_without_the_key_is_caught_by_the_signed_checkpoints(
    log: Tampered,
) -> None:
    prev = log.records[log.at(9)]["hash"]
    for record in log.records[log.at(10) :]:
        if record["type"] == "entry":
            record["host"] = "rewritten.example"
            record["prev_hash"] = prev
            record["hash"] = prev = entry_hash(record)
    assert log.verdict() == ("rewritten", 8)  # the checkpoint after entry 8 still holds


def test_a_truncation_hidden_behind_a_replaced_checkpoint_is_caught_by_its_signature(
    log: Tampered,
) -> None:
    del log.records[log.at(15) :]  # entries 15-19 and the checkpoints after 16 and 20
    last = log.records[-1]
    forged = sign_checkpoint(Ed25519PrivateKey.generate(), 15, last["hash"], last["time"])
    log.checkpoint_path.write_bytes(canonical(forged))
    assert log.verdict() == ("forged-checkpoint", 8)  # 8: the last checkpoint that holds


def test_an_altered_checkpoint_inside_the_log_is_caught_by_its_signature(log: Tampered) -> None:
    next(r for r in log.records if r.get("count") == 16)["count"] = 15
    assert log.verdict() == ("forged-checkpoint", 8)


def test_a_deleted_outside_checkpoint_is_noticed(log: Tampered) -> None:
    log.checkpoint_path.unlink()
    assert log.verdict() == ("missing-checkpoint", ENTRIES)


def test_a_garbage_record_is_named(log: Tampered) -> None:
    log.records.insert(3, b"{not json")
    assert log.verdict() == ("corrupt", 3)


def test_opening_a_tampered_log_refuses_instead_of_burying_the_evidence(log: Tampered) -> None:
    del log.records[log.at(12)]
    log.save()
    with pytest.raises(IntegrityError, match="failed verification") as refused:
        AuditLog.open_files(log.log_path, log.checkpoint_path, log.key)
    assert refused.value.data["bad_seq"] == 12 and refused.value.data["problem"] == "deleted"


def test_a_record_torn_by_a_crash_is_dropped_on_open_and_the_drop_is_recorded(
    written: Path, checkpoint_path: Path, key: Ed25519PrivateKey
) -> None:
    with open(written, "ab") as file:
        file.write(b'{"type":"entry","seq":20,"ho')
    log = AuditLog.open_files(written, checkpoint_path, key, checkpoint_every=EVERY)
    log.close()
    last = read_entries(written)[-1]
    assert (last["seq"], last["phase"], last["error"]) == (
        20,
        "recovered",
        "discarded 28 unfinished bytes",
    )
    assert log.verify().ok


class ReentrantStore(FileRecordStore):
    """A store that, like one whose socket the guard refused, writes to the log mid-append."""

    log: AuditLog | None = None
    failure: Exception | None = None

    def append(self, record: bytes) -> None:
        if self.log is not None and self.failure is None:
            try:
                self.log.append({"phase": "blocked"})
            except RuntimeError as exc:
                self.failure = exc
        super().append(record)


def test_a_store_that_re_enters_the_log_fails_fast_instead_of_deadlocking(
    log_path: Path, checkpoint_path: Path, key: Ed25519PrivateKey
) -> None:
    store = ReentrantStore(log_path)
    log = AuditLog(store, FileCheckpointStore(checkpoint_path), key)
    store.log = log
    writer = threading.Thread(target=log.append, args=({"phase": "intent"},))
    writer.start()
    writer.join(5)
    assert not writer.is_alive()
    assert "re-entered" in str(store.failure)
    assert [e["phase"] for e in read_entries(log_path)] == ["intent"]
