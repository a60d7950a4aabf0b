"""kill -9 at any moment: acknowledged writes survive, key changes are all-or-nothing.

The children are real processes forked by ``python -m daemon.vault.torture`` and
killed with SIGKILL — at random moments, or at each named step of a key change.
"""

from __future__ import annotations

import itertools
import os
import random
import shutil
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from daemon.errors import NotFound, WrongPassphrase
from daemon.vault import Vault
from tests.daemon.vault.support import FAST_SCRYPT, PASSPHRASE, Torture, passphrase

KILLS = 200
NEW_PASSPHRASE = "a brand new passphrase"
KEY = {"passphrase": PASSPHRASE, "n": FAST_SCRYPT}


def _killed(status: int) -> bool:
    return os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL


def test_every_acknowledged_append_survives_sigkill_at_random_moments(
    db_path: Path, torture: Torture
) -> None:
    with Vault.create(db_path, passphrase()) as v:
        conv = v.new_conversation("torture")
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    acked: dict[int, str] = {}
    kills_after_acks = 0

    for kill in range(KILLS):
        pid = torture.start(op="append", db=str(db_path), key=KEY, conv=conv)
        if kill % 4:  # mostly mid-append: 0–20 ms after the first acknowledged append
            torture.until("ack ")
        time.sleep(rng.uniform(0, 0.02))  # else at any moment, opening the vault included
        os.kill(pid, signal.SIGKILL)
        status, lines = torture.finish(pid)
        assert _killed(status), (seed, kill, lines)
        acks = [line.split(" ", 2)[1:] for line in lines if line.startswith("ack ")]
        kills_after_acks += bool(acks)
        acked.update((int(msg_id), content) for msg_id, content in acks)

        with Vault.open(db_path, passphrase()) as v:
            stored = {m["id"]: m["content"] for m in v.get_conversation(conv)["messages"]}
            assert v.verify()["messages"] == len(stored)  # integrity_check ok, all decrypt
        lost = {i: c for i, c in acked.items() if stored.get(i) != c}
        assert lost == {}, (seed, kill)

    print(f"{KILLS} kills, {kills_after_acks} mid-append, {len(acked)} acknowledged appends")
    assert kills_after_acks >= KILLS * 3 // 4
    assert len(acked) > KILLS


def _contents(v: Vault) -> dict[str, Any]:
    return {
        "conversations": [v.get_conversation(c["id"]) for c in v.list_conversations()],
        "settings": v.get_setting("theme"),
        "plugin": v.plugin_get("notes", "todo"),
    }


def _sample_vault(path: Path) -> dict[str, Any]:
    with Vault.create(path, passphrase()) as v:
        for n in range(3):
            conv = v.new_conversation(f"conversation {n}")
            for m in range(3):
                v.append_message(conv, "user" if m % 2 else "assistant", f"message {n}.{m}")
        v.set_setting("theme", "dark")
        v.plugin_put("notes", "todo", ["buy milk"])
        return _contents(v)


def _which_opens(db: Path) -> list[str]:
    opened = []
    for name, secret in (("old", PASSPHRASE), ("new", NEW_PASSPHRASE)):
        try:
            Vault.open(db, passphrase(secret)).close()
            opened.append(name)
        except WrongPassphrase:
            pass
    return opened


def _one_key_set(db: Path) -> None:
    """No data key of the other generation and no pending KEK remain after opening."""
    with sqlite3.connect(db) as conn:
        keys = conn.execute("SELECT count(*) FROM data_keys").fetchone()[0]
        convs = conn.execute("SELECT count(*) FROM conversations").fetchone()[0]
        journal = conn.execute("SELECT count(*) FROM kek_journal").fetchone()[0]
    assert (keys, journal) == (convs + 1, 0)


@pytest.mark.parametrize("reencrypt", [True, False], ids=["reencrypt", "rewrap"])
def test_rotation_killed_at_every_step_opens_with_exactly_one_passphrase_and_loses_nothing(
    tmp_path: Path, torture: Torture, reencrypt: bool
) -> None:
    original = tmp_path / "original.db"
    expected = _sample_vault(original)
    outcomes, steps = [], []

    for k in itertools.count():
        db = tmp_path / f"kill-at-{k}" / "vault.db"
        db.parent.mkdir()
        shutil.copyfile(original, db)
        pid = torture.start(
            op="rotate",
            db=str(db),
            key=KEY,
            new_key={"passphrase": NEW_PASSPHRASE, "n": FAST_SCRYPT},
            reencrypt=reencrypt,
            kill_at=k,
        )
        status, lines = torture.finish(pid)
        opened = _which_opens(db)
        assert len(opened) == 1, (k, lines)
        with Vault.open(db, passphrase(PASSPHRASE if opened == ["old"] else NEW_PASSPHRASE)) as v:
            assert _contents(v) == expected, (k, lines)
            v.verify()
        _one_key_set(db)
        outcomes.append(opened[0])
        if "done" in lines:
            break
        assert _killed(status), (k, lines)
        steps.append(lines[-1])

    assert outcomes[0] == "old" and outcomes[-1] == "new"
    assert outcomes == sorted(outcomes, key=["old", "new"].index)  # switches exactly once
    rekeyed = ["step rekeyed"] * 4 if reencrypt else []  # 3 conversations + settings key
    key_change = ["step journal", "step kek", *rekeyed, "step header", "step commit"]
    assert steps == [*key_change, "step discard"]


def test_deletion_killed_at_every_step_leaves_the_conversation_whole_or_gone(
    tmp_path: Path, torture: Torture
) -> None:
    original = tmp_path / "original.db"
    expected = _sample_vault(original)
    doomed = expected["conversations"][-1]["id"]
    survivors = {"conversations": expected["conversations"][:-1]}
    outcomes = []

    for k in itertools.count():
        db = tmp_path / f"kill-at-{k}" / "vault.db"
        db.parent.mkdir()
        shutil.copyfile(original, db)
        pid = torture.start(op="delete", db=str(db), key=KEY, conv=doomed, kill_at=k)
        status, lines = torture.finish(pid)
        with Vault.open(db, passphrase()) as v:
            contents = _contents(v)
            try:
                v.get_conversation(doomed)
                outcomes.append("whole")
                assert contents == expected, (k, lines)
            except NotFound:
                outcomes.append("gone")
                assert contents == {**expected, **survivors}, (k, lines)
            v.verify()
        _one_key_set(db)
        if "done" in lines:
            break
        assert _killed(status), (k, lines)

    assert outcomes[0] == "whole" and outcomes[-1] == "gone"
