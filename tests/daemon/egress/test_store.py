"""The sealed record store: a record that does not open as part of this log, at its place,
is an integrity failure, never a record taken at its word."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from daemon.egress.audit import AuditLog
from daemon.egress.chain import canonical
from daemon.egress.store import FileCheckpointStore, FileRecordStore, SealedRecordStore
from daemon.egress.verify import Verification, verify

KEY = os.urandom(32)


def _sealed_log(folder: Path, key: Ed25519PrivateKey, entries: int = 6) -> SealedRecordStore:
    store = SealedRecordStore(FileRecordStore(folder / "audit.log"), KEY)
    log = AuditLog(store, FileCheckpointStore(folder / "cp"), key, create=True)
    for i in range(entries):
        log.append({"phase": "intent", "caller": "models.pull", "host": f"h{i}.example"})
    log.close()
    return SealedRecordStore(FileRecordStore(folder / "audit.log"), KEY)


def _verdict(folder: Path, key: Ed25519PrivateKey) -> Verification:
    store = SealedRecordStore(FileRecordStore(folder / "audit.log"), KEY)
    return verify(store, key.public_key(), FileCheckpointStore(folder / "cp"))


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def test_a_sealed_record_opens_only_as_its_own_log_and_place(tmp_path: Path) -> None:
    store = SealedRecordStore(FileRecordStore(tmp_path / "x"), KEY)
    sealed = store.seal(b'{"a":1}', "0123456789abcdef", 7)
    assert sealed.startswith(b"0123456789abcdef:7:")
    assert store.open(sealed) == b'{"a":1}'
    assert store.open(sealed, "fedcba9876543210") is None  # another log
    assert store.open(sealed.replace(b":7:", b":8:", 1)) is None  # another place
    assert store.open(b'{"type":"entry","seq":3}') is None  # plaintext


def test_an_inserted_plaintext_record_is_an_integrity_failure(
    tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    store = _sealed_log(tmp_path, key)
    records = [json.loads(r) for r in store.records() if r is not None]
    forged = {**records[3], "host": "forged.example"}  # a genuine-looking entry, in the clear
    lines = (tmp_path / "audit.log").read_bytes().splitlines()
    lines.insert(4, canonical(forged))
    (tmp_path / "audit.log").write_bytes(b"".join(line + b"\n" for line in lines))
    assert [json.loads(r).get("host") if r else None for r in store.records()][3:6] == [
        "h2.example",
        None,  # the forged line: never handed on as a record
        "h3.example",
    ]
    result = _verdict(tmp_path, key)
    assert (result.ok, result.problem, result.bad_seq) == (False, "corrupt", 3)
    assert "failed authentication" in result.detail


def test_a_record_copied_in_from_another_log_under_the_same_key_is_refused(
    tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _sealed_log(tmp_path / "a", key)
    _sealed_log(tmp_path / "b", key)
    mine = (tmp_path / "a" / "audit.log").read_bytes().splitlines()
    theirs = (tmp_path / "b" / "audit.log").read_bytes().splitlines()
    label = mine[4].split(b":")[0]
    mine[4] = label + theirs[4][theirs[4].index(b":") :]  # their record 4, under my log's id
    (tmp_path / "a" / "audit.log").write_bytes(b"".join(line + b"\n" for line in mine))
    assert _verdict(tmp_path / "a", key).problem == "corrupt"


def test_an_untouched_sealed_log_verifies(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    _sealed_log(tmp_path, key)
    assert _verdict(tmp_path, key).ok
