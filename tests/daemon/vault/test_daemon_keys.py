"""Where the daemon's vault key comes from: the real Secret Service, or a passphrase; rotation."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import keyring
import pytest

from daemon.client import Client
from daemon.errors import InvalidParams, VaultLocked
from tests.conftest import start_daemon
from tests.daemon.vault.running import NO_KEYCHAIN, db, hearth, kek_id, keychain_kek, rows, say

PASSPHRASE = "correct horse battery staple"


def _history(c: Client) -> dict[str, Any]:
    return {x["id"]: c.call("conversations.get", {"id": x["id"]}) for x in _listed(c)}


def _listed(c: Client) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = c.call("conversations.list")["conversations"]
    return listed


def _digest(home: Path) -> str:
    return hashlib.sha256(db(home).read_bytes()).hexdigest()


def test_without_a_keychain_the_daemon_asks_for_a_passphrase_and_a_wrong_one_changes_nothing(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", NO_KEYCHAIN)
    daemon = start_daemon(home)
    try:
        with daemon.client() as c:
            status = c.call("vault.status")
            assert status["initialized"] is False and status["locked"] is True
            assert status["reason"] == "not_initialized"
            with pytest.raises(VaultLocked) as locked:
                say(c, "remember me")
            assert "hearth vault init --passphrase" in locked.value.message
            assert locked.value.data["reason"] == "not_initialized"
            assert say(c, "but this works", store=False)["text"]
            with pytest.raises(VaultLocked):
                c.call("conversations.list")
            assert not db(home).exists()  # no key file, no vault invented
            with pytest.raises(InvalidParams):
                c.call("vault.init", {"passphrase": ""})

        init = hearth(home, "vault", "init", "--passphrase-stdin", stdin=PASSPHRASE + "\n")
        assert init.returncode == 0, init.stderr
        assert "open, protected by a passphrase" in init.stdout
        with daemon.client() as c:
            conv = say(c, "remember me")["conversation_id"]
            before = _history(c)
            again = hearth(home, "vault", "init", "--passphrase-stdin", stdin="other\n")
            assert again.returncode == 2 and "already exists" in again.stderr
    finally:
        daemon.stop()

    daemon = start_daemon(home)  # a passphrase vault starts locked
    try:
        with daemon.client() as c:
            assert c.call("vault.status")["reason"] == "passphrase_locked"
            with pytest.raises(VaultLocked) as locked:
                say(c, "more", conversation_id=conv)
            assert "hearth vault unlock" in locked.value.message
            assert say(c, "store nothing", store=False)["stored"] is False

            untouched = _digest(home)
            wrong = hearth(home, "vault", "unlock", "--passphrase-stdin", stdin="wrong guess\n")
            assert wrong.returncode == 2 and "passphrase is wrong" in wrong.stderr
            assert len(wrong.stderr.strip().splitlines()) == 1
            assert _digest(home) == untouched
            assert c.call("vault.status")["locked"] is True

            right = hearth(home, "vault", "unlock", "--passphrase-stdin", stdin=PASSPHRASE + "\n")
            assert right.returncode == 0, right.stderr
            assert _history(c) == before
            assert say(c, "more", conversation_id=conv)["stored"] is True
    finally:
        daemon.stop()
    logs = b"".join(p.read_bytes() for p in (home / "logs").iterdir() if p.is_file())
    assert PASSPHRASE.encode() not in logs and b"wrong guess" not in logs


def test_the_real_secret_service_stores_and_returns_the_kek_through_the_daemon(
    home: Path, own_keychain: str
) -> None:
    daemon = start_daemon(home)  # the session's gnome-keyring (tests/conftest.py)
    try:
        with daemon.client() as c:
            status = c.call("vault.status")
            assert (status["protection"], status["locked"]) == ("keychain", False)
            conv = say(c, "kept by the keychain")["conversation_id"]
    finally:
        daemon.stop()
    kek = kek_id(home)
    stored = keychain_kek(kek)
    assert stored is not None and len(stored) == 32
    assert stored not in db(home).read_bytes()

    daemon = start_daemon(home)  # a new process: only the Secret Service has the KEK
    try:
        with daemon.client() as c:
            assert c.call("vault.status")["locked"] is False
            messages = c.call("conversations.get", {"id": conv})["messages"]
            assert messages[0]["content"] == "kept by the keychain"
    finally:
        daemon.stop()

    keyring.delete_password("hearth", f"vault-kek-{kek}")  # the keychain item is gone
    daemon = start_daemon(home)
    try:
        with daemon.client() as c:
            assert c.call("vault.status")["reason"] == "keychain_key_missing"
            with pytest.raises(VaultLocked):
                say(c, "where did it go")
            assert say(c, "still answers", store=False)["text"]
    finally:
        daemon.stop()


def test_rotate_with_reencrypt_from_the_cli_keeps_every_conversation(home: Path) -> None:
    daemon = start_daemon(home)
    try:
        with daemon.client() as c:
            first = say(c, "alpha")["conversation_id"]
            say(c, "alpha again", conversation_id=first)
            say(c, "bravo")
            before = _history(c)
        old_kek = kek_id(home)
        old_keys = set(rows(home, "SELECT key_id FROM data_keys"))

        rotated = hearth(home, "vault", "rotate", "--reencrypt")
        assert rotated.returncode == 0, rotated.stderr
        assert "open, protected by a keychain" in rotated.stdout

        assert kek_id(home) != old_kek
        assert keychain_kek(old_kek) is None and keychain_kek(kek_id(home)) is not None
        assert not old_keys & set(rows(home, "SELECT key_id FROM data_keys"))  # all new
        with daemon.client() as c:
            assert _history(c) == before

        new_kek = kek_id(home)
        to_passphrase = hearth(
            home, "vault", "rotate", "--passphrase-stdin", stdin=PASSPHRASE + "\n"
        )
        assert to_passphrase.returncode == 0, to_passphrase.stderr
        assert keychain_kek(new_kek) is None  # the keychain holds nothing for it any more
    finally:
        daemon.stop()

    daemon = start_daemon(home)
    try:
        with daemon.client() as c:
            assert c.call("vault.status")["reason"] == "passphrase_locked"
            c.call("vault.unlock", {"passphrase": PASSPHRASE})
            assert _history(c) == before
    finally:
        daemon.stop()
