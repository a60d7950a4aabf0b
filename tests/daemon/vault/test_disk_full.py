"""A full disk: a clear StorageFull, nothing acknowledged that was not stored, and recovery."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.errors import StorageFull
from daemon.vault import Vault
from tests.daemon.vault.support import passphrase


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 1 MiB tmpfs mounted for this test (needs root, as in CI)."""
    if os.geteuid() != 0:
        pytest.fail("the disk-full test mounts a tmpfs: run the vault tests as root (as CI does)")
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(mount)], check=True
    )
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)
        if os.path.ismount(mount):
            subprocess.run(["umount", "-l", str(mount)], check=True)


def _fill(path: Path) -> None:
    """Write until the disk refuses even a single byte."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (64 * 1024, 4096, 1):
            try:
                while os.write(fd, os.urandom(size)):
                    pass
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)


def test_a_full_disk_raises_storage_full_acknowledges_only_what_was_stored_and_recovers(
    small_disk: Path,
) -> None:
    db_path = small_disk / "vault.db"
    filler = small_disk / "filler"
    vault = Vault.create(db_path, passphrase())
    try:
        conv = vault.new_conversation("full disk")
        _fill(filler)
        os.truncate(filler, filler.stat().st_size - 64 * 1024)  # room for a few appends
        acked: dict[int, str] = {}
        refused: list[str] = []
        for i in range(2000):
            content = f"message {i} " + "x" * 3000  # a few pages per append
            try:
                acked[vault.append_message(conv, "user", content)] = content
            except StorageFull as full:
                assert "full" in full.message and "nothing was stored" in full.message
                refused.append(content)
                if len(refused) == 3:
                    break
        assert acked, "no append fitted in the space left"
        assert refused, "the disk never filled up"
        # Reading still works while the disk is full, and shows exactly what was acknowledged.
        shown = {m["id"]: m["content"] for m in vault.get_conversation(conv)["messages"]}
        assert shown == acked

        filler.unlink()  # free the space: the same open vault works again
        after = vault.append_message(conv, "assistant", "space is back")
        vault.set_setting("also", "stored")
    finally:
        vault.close()

    with Vault.open(db_path, passphrase()) as v:
        stored = {m["id"]: m["content"] for m in v.get_conversation(conv)["messages"]}
        assert stored == {**acked, after: "space is back"}
        assert not set(refused) & set(stored.values())
        assert v.get_setting("also") == "stored"
        v.verify()
    shutil.rmtree(small_disk, ignore_errors=True)
