"""Faults with real processes: kill -9 during a stream of chats, and a full disk."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import faults
from daemon.errors import StorageFull
from daemon.vault import KeychainKeySource, Vault
from tests.conftest import make_home, start_daemon
from tests.daemon.vault.running import db, rows, say

KILLS = 200


@pytest.mark.timeout(1800)  # ~4 min on 2 idle cores (1.2 s a daemon life); bounded, never hangs
def test_kill_9_at_random_moments_during_chats_loses_no_acknowledged_message() -> None:
    """bench/faults.py's loop: each kill ends one daemon life (see its docstring)."""
    report = faults.run(KILLS, lanes=2)
    print(
        f"{report.kills} kills ({report.mid_stream} after an answer, {report.on_ack} of them "
        f"as it arrived) in {report.seconds:.0f} s, "
        f"{report.acked} answers acknowledged, in flight at a kill: "
        f"{report.in_flight_stored} stored, {report.in_flight_lost} not"
    )
    assert report.kills == KILLS
    assert report.lost == []
    assert report.strays == []
    assert report.integrity_failures == []
    assert report.stalls == []
    assert report.mid_stream >= KILLS // 2
    assert report.on_ack >= KILLS // 10  # one life in five, killed as its answer arrives
    assert report.acked > KILLS


@pytest.fixture
def small_data_home() -> Iterator[Path]:
    """A Hearth home whose data dir (the vault) is a real 2 MiB tmpfs (needs root, as CI)."""
    if os.geteuid() != 0:
        pytest.fail("the disk-full test mounts a tmpfs: run the vault tests as root (as CI does)")
    home = make_home("keep_alive = -1\n")
    data = home / "data"
    data.mkdir(mode=0o700)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(data)], check=True
    )
    try:
        yield home
    finally:
        subprocess.run(["umount", str(data)], check=False)
        if os.path.ismount(data):
            subprocess.run(["umount", "-l", str(data)], check=True)
        shutil.rmtree(home, ignore_errors=True)


def _fill(path: Path, leave: int) -> None:
    """Write until the disk refuses a single byte, then free ``leave`` bytes."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (64 * 1024, 4096, 1):
            try:
                while os.write(fd, b"\0" * size):
                    pass
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    os.truncate(path, max(0, path.stat().st_size - leave))


def test_a_full_disk_refuses_the_chat_acknowledges_only_what_was_stored_and_recovers(
    small_data_home: Path, own_keychain: str
) -> None:
    home = small_data_home
    filler = home / "data" / "filler"
    padding = "words " * 300  # the same prefix every time: the runner's cache keeps it cheap
    daemon = start_daemon(home)
    try:
        with daemon.client() as c:
            assert c.call("vault.status")["locked"] is False
            _fill(filler, leave=160 * 1024)
            acked: dict[str, str] = {}
            refused: str | None = None
            for i in range(400):
                text = f"{padding} message {i}"
                try:
                    acked[say(c, text)["conversation_id"]] = text
                except StorageFull as full:
                    assert "full" in full.message and "nothing was stored" in full.message
                    refused = text
                    break
            assert refused is not None, "the disk never filled up"
            print(f"{len(acked)} chats stored before the disk was full")
            assert acked, "no chat fitted in the space left"

            # Reading works on a full disk and shows exactly what was acknowledged.
            listed = {x["id"] for x in c.call("conversations.list")["conversations"]}
            assert listed == set(acked)
            for conv, text in acked.items():
                assert c.call("conversations.get", {"id": conv})["messages"][0]["content"] == text
            assert c.call("conversations.search", {"text": refused})["results"] == []

            filler.unlink()  # space is back: the same daemon stores again
            after = say(c, "space is back")
            assert after["stored"] is True
    finally:
        daemon.stop()

    (check,) = rows(home, "PRAGMA integrity_check")
    assert check == ("ok",)
    with Vault.open(db(home), KeychainKeySource()) as v:
        stored = {x["id"]: v.get_conversation(x["id"]) for x in v.list_conversations()}
        v.verify()
    assert set(stored) == {*acked, after["conversation_id"]}
    assert refused not in {m["content"] for conv in stored.values() for m in conv["messages"]}
