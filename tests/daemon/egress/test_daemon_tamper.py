"""Tampering with the daemon's audit log on disk makes `hearth audit verify` fail and name
the first entry that can no longer be trusted; the daemon then refuses outbound calls,
until `hearth audit reset` sets the log aside and begins a new one.

A pristine log is made once by the real daemon (two runs: 10 entries, a signed checkpoint
at each shutdown, and after every record a signed checkpoint kept outside the log). Each
case copies that home, alters it while the daemon is stopped, as someone with the user's
files would — holding the log's data key, even, but never the signing key — and starts
the daemon again.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from daemon.egress.chain import canonical, entry_hash, sign, sign_checkpoint
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
        self.outside = folder / "sealed" / "audit-checkpoint.sealed"
        self.sealer = SealedRecordStore(FileRecordStore(self.path), key)
        self.lines = self.path.read_bytes().splitlines()
        self.log_id = self.lines[0].split(b":")[0].decode()
        self.records: list[dict[str, Any]] = [
            json.loads(self.sealer.open(x) or b"null") for x in self.lines
        ]

    def index(self, seq: int) -> int:
        return next(i for i, r in enumerate(self.records) if r.get("seq") == seq)

    def reseal(self, i: int) -> None:
        record = self.records[i]
        self.lines[i] = self.sealer.seal(canonical(record), self.log_id, record["n"])

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
    assert kinds == ["genesis"] + ["entry"] * 6 + ["checkpoint"] + ["entry"] * 4 + ["checkpoint"]
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
    record = {k: v for k, v in log.records[i].items() if k not in ("hash", "sig", "key_id")}
    forged = sign(Ed25519PrivateKey.generate(), record)
    forged["hash"] = entry_hash(forged)
    log.records[i] = forged
    log.reseal(i)
    log.save()


def replace_outside_checkpoint(home: Path) -> None:
    secrets = SealedFileSecrets(home / "data" / "egress" / "sealed")
    log = Log(home)
    head = log.records[-1]["hash"]
    forged = sign_checkpoint(Ed25519PrivateKey.generate(), log.log_id, 10, len(log.lines), head, 0)
    secrets.put("audit-checkpoint", canonical(forged))


def delete_checkpoints(home: Path) -> None:
    """Cut every checkpoint out of the log and delete the one kept outside it."""
    log = Log(home)
    log.lines = [line for line, r in zip(log.lines, log.records, strict=True)
                 if r["type"] != "checkpoint"]  # fmt: skip
    log.save()
    log.outside.unlink()


def delete_outside_checkpoint(home: Path) -> None:
    Log(home).outside.unlink()


def delete_log(home: Path) -> None:
    Log(home).path.unlink()


def delete_log_and_outside_checkpoint(home: Path) -> None:
    log = Log(home)
    log.path.unlink()
    log.outside.unlink()


def insert_plaintext_entry(home: Path) -> None:
    """A forged entry in the clear at the end, chained and hashed as a genuine one would be
    (no key is needed for that): before, it was listed, then signed at the next checkpoint."""
    log = Log(home)
    last = log.records[-1]
    forged = {**log.records[log.index(9)], "seq": 10, "n": last["n"] + 1, "host": "x.example"}
    forged["prev_hash"] = last["hash"]
    forged["hash"] = entry_hash(forged)
    log.lines.append(canonical(forged))
    log.save()


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
        (delete_checkpoints, 6, "missing-checkpoint"),
        (delete_outside_checkpoint, 10, "missing-checkpoint"),
        (delete_log, 0, "missing-log"),
        (delete_log_and_outside_checkpoint, 0, "missing-log"),
        (insert_plaintext_entry, 10, "corrupt"),
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
        assert out.stdout.startswith("note: no keychain")  # file mode says what it cannot see
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
        line, note = out.stdout.strip().splitlines()
        assert line.startswith("audit log ok: 10 entries, 2 signed checkpoints, 10 entries")
        assert note.startswith("note: no keychain") and "cannot be detected" in note
        listing = hearth(home, "audit", "list", "--caller", "models.pull", "--json")
        assert [e["seq"] for e in json.loads(listing.stdout)] == list(range(10))
    finally:
        daemon.stop()
        shutil.rmtree(home, ignore_errors=True)


def test_a_log_cut_back_after_a_crash_fails_verification_naming_what_is_gone() -> None:
    """A daemon killed (SIGKILL) after 100 entries, its log cut back to its first checkpoint."""
    home = make_home()
    daemon = launch(home)
    try:
        for _ in range(50):
            with pytest.raises(EgressDenied):
                daemon.call("models.pull", PULL)
        os.kill(daemon.pid, signal.SIGKILL)
        daemon.proc.wait(30)
        log = Log(home)
        first = next(i for i, r in enumerate(log.records) if r.get("type") == "checkpoint")
        assert (log.records[first]["count"], len(log.records)) == (64, 102)
        log.lines = log.lines[: first + 1]
        log.save()
        daemon = launch(home)
        out = hearth(home, "audit", "verify")
        assert out.returncode == 1
        assert out.stderr.startswith("hearth: audit log bad at seq 64 (truncated): ")
        assert "vouches for 100 entries: entries 64-99 were removed" in out.stderr
    finally:
        daemon.stop()
        shutil.rmtree(home, ignore_errors=True)


def test_audit_reset_keeps_the_failed_log_and_begins_one_that_names_it(pristine: Path) -> None:
    home = make_home()
    shutil.copytree(pristine, home, dirs_exist_ok=True)
    delete_outside_checkpoint(home)
    old_id = Log(home).log_id
    daemon = launch(home)
    try:
        out = hearth(home, "audit", "reset")
        assert out.returncode == 0, out.stderr
        kept = out.stdout.splitlines()[0].split(" kept as ")[1].split()[0]
        assert (home / "data" / "egress" / kept).exists()
        assert "audit log ok: 0 entries" in out.stdout
        with pytest.raises(EgressDenied):  # calls are judged again, and logged
            daemon.call("models.pull", PULL)
        again = hearth(home, "audit", "reset")  # a sound log is never reset
        assert again.returncode != 0 and "nothing to reset" in again.stderr
    finally:
        daemon.stop()
    genesis = Log(home).records[0]
    assert genesis["previous"] == {
        "log_id": old_id, "entries": 10, "problem": "missing-checkpoint", "kept": kept,
    }  # fmt: skip
    shutil.rmtree(home, ignore_errors=True)
