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
    log = AuditLog.open_files(log_path, checkpoint_path, key, checkpoint_every=EVERY, create=True)
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


def last_log_id(log: Tampered) -> str:
    return str(log.records[0]["log_id"])


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
        log = AuditLog.open_files(
            log_path, checkpoint_path, key, checkpoint_every=EVERY, create=True
        )
        for _ in range(3):
            log.append({"phase": "intent", "caller": f"run{run}"})
        log.close()
    entries = read_entries(log_path)
    assert list(log.entries()) == entries  # checkpoints left out
    assert [e["seq"] for e in entries] == [0, 1, 2, 3, 4, 5]
    records = [json.loads(line) for line in log_path.read_bytes().splitlines()]
    assert [r["type"] for r in records] == ["genesis", *["entry"] * 3, "checkpoint",
                                            *["entry"] * 3, "checkpoint"]  # fmt: skip
    assert records[0]["prev_hash"] == GENESIS
    assert [r["n"] for r in records] == list(range(len(records)))
    assert all(b["prev_hash"] == a["hash"] for a, b in itertools.pairwise(records))
    assert all(entry_hash(r) == r["hash"] for r in records)


def test_a_signed_checkpoint_is_written_every_n_entries_and_at_close_and_kept_outside_it(
    log: Tampered,
) -> None:
    checkpoints = [r for r in log.records if r["type"] == "checkpoint"]
    assert [c["count"] for c in checkpoints] == [8, 16, 20]
    assert checkpoints[-1]["head"] == log.records[log.at(ENTRIES - 1)]["hash"]
    outside = json.loads(log.checkpoint_path.read_bytes())
    assert (outside["count"], outside["records"]) == (ENTRIES, len(log.records))
    assert outside["head"] == log.records[-1]["hash"]  # the last record: the checkpoint


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
    forged = sign_checkpoint(
        Ed25519PrivateKey.generate(), last_log_id(log), 15, len(log.records), last["hash"], 0.0
    )
    log.checkpoint_path.write_bytes(canonical(forged))
    assert log.verdict() == ("forged-checkpoint", 8)  # 8: the last checkpoint that holds


def test_an_altered_checkpoint_inside_the_log_is_caught_by_its_signature(log: Tampered) -> None:
    next(r for r in log.records if r.get("count") == 16)["count"] = 15
    assert log.verdict() == ("forged-checkpoint", 8)


def test_a_deleted_outside_checkpoint_is_noticed(log: Tampered) -> None:
    log.checkpoint_path.unlink()
    assert log.verdict() == ("missing-checkpoint", ENTRIES)


def test_a_garbage_record_is_named(log: Tampered) -> None:
    log.records.insert(log.at(3), b"{not json")
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

    def append(self, record: bytes, log_id: str = "", n: int = 0) -> None:
        if self.log is not None and self.failure is None:
            try:
                self.log.append({"phase": "blocked"})
            except RuntimeError as exc:
                self.failure = exc
        super().append(record, log_id, n)


def test_a_store_that_re_enters_the_log_fails_fast_instead_of_deadlocking(
    log_path: Path, checkpoint_path: Path, key: Ed25519PrivateKey
) -> None:
    store = ReentrantStore(log_path)
    log = AuditLog(store, FileCheckpointStore(checkpoint_path), key, create=True)
    store.log = log
    writer = threading.Thread(target=log.append, args=({"phase": "intent"},))
    writer.start()
    writer.join(5)
    assert not writer.is_alive()
    assert "re-entered" in str(store.failure)
    assert [e["phase"] for e in read_entries(log_path)] == ["intent"]


def _crashed_after(log_path: Path, checkpoint_path: Path, key: Ed25519PrivateKey, n: int) -> None:
    """A log of ``n`` entries whose writer died without closing (no final checkpoint)."""
    log = AuditLog.open_files(log_path, checkpoint_path, key, checkpoint_every=64, create=True)
    for i in range(n):
        log.append({"phase": "intent", "caller": "models.pull", "host": f"h{i}.example"})


def test_entries_after_the_last_checkpoint_are_vouched_for_outside_the_log(
    log_path: Path, checkpoint_path: Path, key: Ed25519PrivateKey
) -> None:
    """A daemon killed after 100 entries, its log cut back to its first checkpoint."""
    _crashed_after(log_path, checkpoint_path, key, 100)
    log = Tampered(log_path, checkpoint_path, key)
    first = next(i for i, r in enumerate(log.records) if r["type"] == "checkpoint")
    del log.records[first + 1 :]
    problem, seq = log.verdict()
    assert (problem, seq) == ("truncated", 64)
    result = verify(
        FileRecordStore(log_path), key.public_key(), FileCheckpointStore(checkpoint_path)
    )
    assert "entries 64-99 were removed" in result.detail


def test_an_entry_written_just_before_a_crash_is_reported_as_not_yet_vouched_for(
    log_path: Path, checkpoint_path: Path, key: Ed25519PrivateKey
) -> None:
    _crashed_after(log_path, checkpoint_path, key, 5)
    before = checkpoint_path.read_bytes()
    log = AuditLog.open_files(log_path, checkpoint_path, key, create=True)
    log.append({"phase": "intent", "caller": "late"})
    checkpoint_path.write_bytes(before)  # the crash came between the log and the checkpoint
    result = log.verify()
    assert result.ok and (result.entries, result.vouched, result.unvouched) == (6, 5, 1)
    assert "1 entries after seq 4 are not vouched for" in result.summary()


def test_checkpoints_cut_out_of_the_log_with_the_outside_one_deleted_are_noticed(
    log: Tampered,
) -> None:
    log.records = [r for r in log.records if r["type"] != "checkpoint"]
    log.checkpoint_path.unlink()
    assert log.verdict() == ("missing-checkpoint", 8)  # the entry after the first one cut


def test_a_deleted_log_is_noticed_and_not_silently_begun_again(
    written: Path, checkpoint_path: Path, key: Ed25519PrivateKey
) -> None:
    written.unlink()
    result = verify(
        FileRecordStore(written), key.public_key(), FileCheckpointStore(checkpoint_path)
    )
    assert (result.ok, result.problem) == (False, "missing-log")
    for create in (False, True):  # an outside checkpoint says a log existed: never begin anew
        with pytest.raises(IntegrityError, match="missing-log"):
            AuditLog.open_files(written, checkpoint_path, key, create=create)
    assert not written.exists()


def test_a_log_and_checkpoint_both_deleted_are_noticed_unless_the_key_is_new(
    written: Path, checkpoint_path: Path, key: Ed25519PrivateKey
) -> None:
    written.unlink()
    checkpoint_path.unlink()
    with pytest.raises(IntegrityError, match="missing-log"):
        AuditLog.open_files(written, checkpoint_path, key)  # the key says a log existed


def test_a_log_replaced_by_another_genuine_one_is_named(
    written: Path, checkpoint_path: Path, key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    other = tmp_path / "other.log"
    AuditLog.open_files(other, tmp_path / "other.cp", key, create=True).close()
    written.write_bytes(other.read_bytes())  # same key, another log
    result = verify(
        FileRecordStore(written), key.public_key(), FileCheckpointStore(checkpoint_path)
    )
    assert result.problem == "wrong-log"


def test_a_log_set_aside_is_followed_by_one_whose_genesis_names_it(
    written: Path, checkpoint_path: Path, key: Ed25519PrivateKey
) -> None:
    old_id = json.loads(written.read_bytes().splitlines()[0])["log_id"]
    written.rename(written.with_name("kept.log"))
    previous = {"log_id": old_id, "entries": 20, "problem": "missing-log", "kept": "kept.log"}
    store, outside = FileRecordStore(written), FileCheckpointStore(checkpoint_path)
    log = AuditLog(store, outside, key, create=True, previous=previous)
    log.append({"phase": "intent", "caller": "after"})
    log.close()
    genesis = json.loads(written.read_bytes().splitlines()[0])
    assert genesis["previous"] == previous and genesis["log_id"] != old_id
    assert verify(store, key.public_key(), outside).ok
