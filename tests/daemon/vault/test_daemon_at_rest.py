"""What the running daemon leaves on disk: no plaintext, no keys; deleted means unreadable."""

from __future__ import annotations

import base64
import re
import sqlite3
import uuid
from pathlib import Path

import pytest

from daemon.errors import HearthError, IntegrityError, VaultLocked
from daemon.vault import KeychainKeySource, Vault
from tests.daemon.vault.running import (
    NO_KEYCHAIN,
    db,
    encodings,
    files_containing,
    hearth,
    kek_id,
    keychain_kek,
    rows,
)

PASSPHRASE = "a passphrase that must not leak"


def _chat_about(home: Path, marker: str) -> str:
    """Chats that put ``marker`` in a title, a system prompt and messages; the conversation."""
    first = hearth(
        home,
        "chat",
        "--system",
        f"You remember {marker}.",
        "--max-tokens",
        "4",
        f"My secret word is {marker}. Repeat it: {marker}",
    )
    assert first.returncode == 0, first.stderr
    found = re.search(r"\[conversation ([0-9a-f]+)\]", first.stderr)
    assert found, first.stderr
    conv = found.group(1)
    again = hearth(
        home, "chat", "--conversation", conv, "--max-tokens", "4", f"Say {marker} once more"
    )
    assert again.returncode == 0, again.stderr
    return conv


def _assert_nothing_under(home: Path, secrets: list[bytes]) -> None:
    leaks = files_containing(home, secrets)
    assert leaks == [], leaks
    names = {p.name for p in home.rglob("*")}
    assert {"vault.db", "daemon.log", "runner.log", "daemon.out"} <= names  # we looked there


@pytest.mark.parametrize("protection", ["keychain", "passphrase"])
def test_after_chats_no_file_under_hearth_home_holds_the_marker_yet_search_finds_it(
    home: Path, protection: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = f"zq{uuid.uuid4().hex}"
    if protection == "passphrase":
        monkeypatch.setenv("PYTHON_KEYRING_BACKEND", NO_KEYCHAIN)
        init = hearth(home, "vault", "init", "--passphrase-stdin", stdin=PASSPHRASE + "\n")
        assert init.returncode == 0, init.stderr
    try:
        conv = _chat_about(home, marker)
        found = hearth(home, "history", "search", marker.upper())
        assert found.returncode == 0, found.stderr
        assert found.stdout.count(conv) >= 4  # title, system prompt, two user messages
        assert marker in hearth(home, "history", "show", conv).stdout

        secrets = encodings(marker)
        if protection == "passphrase":
            secrets += encodings(PASSPHRASE)
        else:
            stored = keychain_kek(kek_id(home))
            assert stored is not None and len(stored) == 32
            secrets += [stored, base64.b64encode(stored)]
        _assert_nothing_under(home, secrets)  # while the daemon runs: the WAL is live
    finally:
        hearth(home, "down")
    _assert_nothing_under(home, secrets)
    assert Vault.protection(db(home)) == protection


def test_a_conversation_removed_with_the_cli_is_unreadable_even_from_an_earlier_copy(
    home: Path, tmp_path: Path, own_keychain: str
) -> None:
    try:
        doomed = _chat_about(home, "doomed words")
        kept = hearth(home, "chat", "--max-tokens", "2", "keep these words")
        assert kept.returncode == 0, kept.stderr
        (key_id,) = rows(home, "SELECT key_id FROM conversations WHERE id = ?", doomed)[0]
        (wrapped,) = rows(home, "SELECT wrapped FROM data_keys WHERE key_id = ?", key_id)[0]
        # A consistent copy of the live vault (WAL included), as a backup tool would take.
        backup = tmp_path / "backup.db"
        with sqlite3.connect(db(home)) as live, sqlite3.connect(backup) as copy:
            live.backup(copy)
        with Vault.open(backup, KeychainKeySource()) as before:  # the copy opens now
            assert before.get_conversation(doomed)["title"].startswith("My secret word")

        removed = hearth(home, "history", "rm", doomed)
        assert removed.returncode == 0, removed.stderr

        assert rows(home, "SELECT 1 FROM data_keys WHERE key_id = ?", key_id) == []
        assert files_containing(db(home).parent, [wrapped]) == []
    finally:
        hearth(home, "down")

    with pytest.raises(VaultLocked) as locked:  # its key-encryption key left the keychain
        Vault.open(backup, KeychainKeySource())
    assert locked.value.data["reason"] == "keychain_key_missing"
    # Even the live vault's header (and its keychain key) grafted onto the copy: the
    # conversation's data key was wrapped by a master key that no longer exists.
    with sqlite3.connect(backup) as old, sqlite3.connect(db(home)) as live:
        header = live.execute("SELECT * FROM header").fetchone()
        old.execute("DELETE FROM header")
        old.execute(f"INSERT INTO header VALUES ({', '.join('?' * len(header))})", header)
    with Vault.open(backup, KeychainKeySource()) as grafted:
        with pytest.raises(IntegrityError):
            grafted.get_conversation(doomed)
        with pytest.raises(HearthError):
            grafted.search("doomed")
