"""Tampering with the daemon's audit log on disk makes `hearth audit verify` fail and name
the first entry that can no longer be trusted; the daemon then refuses outbound calls.

A pristine log is made once by the real daemon (two runs: 10 entries, a signed checkpoint
at each shutdown, the latest also kept outside the log). Each case copies that home,
alters it while the daemon is stopped, as someone with the user's files would — holding
the log's data key, even, but never the signing key — and starts the daemon again.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from daemon.egress.chain import canonical, entry_hash, sign_checkpoint
from daemon.egress.secrets import SealedFileSecrets
from daemon.egress.store import FileRecordStore, SealedRecordStore
from daemon.errors import EgressDenied, IntegrityError
from tests.conftest import make_home

from .daemon_support import hearth, launch

PULL = {"repo": "hearth-test/none", "file": "x.gguf", "endpoint": "http://127.0.0.1:9"}


class Log:
    """The sealed log of one home, read and rewritten with its data key."""

    def __init__(self, home: Path) -> None:
        folder = home / "data" / "egress"
        key = SealedFileSecrets(folder / "sealed").get("audit-log-key")
        assert key is not None
        self.path = folder / "audit.log"
        self.sealer = SealedRecordStore(FileRecordStore(self.path), key)
        self.lines = self.path.read_bytes().splitlines()
        self.records: list[dict[str, Any]] = [json.loads(self.sealer.open(x)) for x in self.lines]

    def index(self, seq: int) -> int:
        return next(i for i, r in enumerate(self.records) if r.get("seq") == seq)

    def reseal(self, i: int) -> None:
        self.lines[i] = self.sealer.seal(canonical(self.records[i]))

    def save(self) -> None:
        self.path.write_bytes(b"".join(line + b"\n" for line in self.lines))


def _make_entries(home: Path, pulls: int) -> None:
    """Each offline pull adds two entries (intent, outcome); shutdown adds a checkpoint."""
    daemon = launch(home)
    try:
        for _ in range(pulls):
            with pytest.raises(EgressDenied):
                daemon.call("models.pull", PULL)
    finally:
        daemon.stop()


@pytest.fixture(scope="module")
def pristine() -> Iterator[Path]:
    home = make_home()
    _make_entries(home, 3)  # entries 0-5, checkpoint (6)
    _make_entries(home, 2)  # entries 6-9, checkpoint (10), kept outside the log too
    kinds = [r.get("type") for r in Log(home).records]
    assert kinds == ["entry"] * 6 + ["checkpoint"] + ["entry"] * 4 + ["checkpoint"]
    yield home
    shutil.rmtree(home, ignore_errors=True)


def delete_entry(home: Path) -> None:
    log = Log(home)
    del log.lines[log.index(3)]
    log.save()


def edit_entry(home: Path) -> None:
    log = Log(home)
    i = log.index(4)
    log.records[i]["host"] = "harmless.example"
    log.reseal(i)
    log.save()


def edit_ciphertext(home: Path) -> None:
    log = Log(home)
    i = log.index(4)
    line = bytearray(log.lines[i])
    line[40] = ord("A") if line[40] != ord("A") else ord("B")
    log.lines[i] = bytes(line)
    log.save()


def edit_and_rechain(home: Path) -> None:
    """Edit entry 2 and recompute every later hash: only the signatures can tell."""
    log = Log(home)
    log.records[log.index(2)]["host"] = "harmless.example"
    prev = log.records[log.index(1)]["hash"]
    for i, record in enumerate(log.records):
        if record.get("type") == "entry" and record["seq"] >= 2:
            record["prev_hash"] = prev
            record["hash"] = prev = entry_hash(record)
            log.reseal(i)
    log.save()


def reorder_entries(home: Path) -> None:
    log = Log(home)
    a, b = log.index(7), log.index(8)
    log.lines[a], log.lines[b] = log.lines[b], log.lines[a]
    log.save()


def truncate_log(home: Path) -> None:
    log = Log(home)
    log.lines = log.lines[: log.index(6) + 1]  # entries 7-9 and the last checkpoint cut off
    log.save()


def forge_checkpoint_in_the_log(home: Path) -> None:
    log = Log(home)
    i = next(i for i, r in enumerate(log.records) if r.get("type") == "checkpoint")
    record = log.records[i]
    forged = sign_checkpoint(Ed25519PrivateKey.generate(), 6, record["head"], record["time"])
    log.records[i] = forged
    log.reseal(i)
    log.save()


def replace_outside_checkpoint(home: Path) -> None:
    secrets = SealedFileSecrets(home / "data" / "egress" / "sealed")
    head = Log(home).records[-1]["head"]
    forged = sign_checkpoint(Ed25519PrivateKey.generate(), 10, head, 0.0)
    secrets.put("audit-checkpoint", canonical(forged))


Tamper = Callable[[Path], None]


@pytest.mark.parametrize(
    ("tamper", "bad_seq", "problem"),
    [
        (delete_entry, 3, "deleted"),
        (edit_entry, 4, "edited"),
        (edit_ciphertext, 4, "corrupt"),
        (edit_and_rechain, 0, "rewritten"),
        (reorder_entries, 7, "reordered"),
        (truncate_log, 7, "truncated"),
        (forge_checkpoint_in_the_log, 0, "forged-checkpoint"),
        (replace_outside_checkpoint, 10, "forged-checkpoint"),
    ],
)
def test_tampering_makes_audit_verify_fail_at_the_first_bad_seq(
    pristine: Path, tmp_path: Path, tamper: Tamper, bad_seq: int, problem: str
) -> None:
    home = make_home()
    shutil.copytree(pristine, home, dirs_exist_ok=True)
    tamper(home)
    daemon = launch(home)  # it starts: the evidence stays readable
    try:
        out = hearth(home, "audit", "verify")
        assert out.returncode == 1
        (line,) = out.stderr.strip().splitlines()
        assert line.startswith(f"hearth: audit log bad at seq {bad_seq} ({problem}): ")
        with pytest.raises(IntegrityError, match="outbound calls are off"):
            daemon.call("models.pull", PULL)
        assert daemon.call("net.status")["audit"]["ok"] is False
    finally:
        daemon.stop()
        shutil.rmtree(home, ignore_errors=True)


def test_an_untouched_log_verifies_with_a_one_line_summary(pristine: Path) -> None:
    home = make_home()
    shutil.copytree(pristine, home, dirs_exist_ok=True)
    daemon = launch(home)
    try:
        out = hearth(home, "audit", "verify")
        assert out.returncode == 0, out.stderr
        (line,) = out.stdout.strip().splitlines()
        assert line.startswith("audit log ok: 10 entries, 2 signed checkpoints, 10 entries")
        listing = hearth(home, "audit", "list", "--caller", "models.pull", "--json")
        assert [e["seq"] for e in json.loads(listing.stdout)] == list(range(10))
    finally:
        daemon.stop()
        shutil.rmtree(home, ignore_errors=True)
