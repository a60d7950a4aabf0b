"""VaultService, the daemon's hold on its vault, without a daemon around it."""

from __future__ import annotations

import gc
import time
from pathlib import Path

import pytest
from keyring.backend import KeyringBackend
from keyring.errors import PasswordDeleteError

from daemon.errors import InvalidParams, VaultLocked, WrongPassphrase
from daemon.vault import KeychainKeySource, KeySource, PassphraseKeySource, Vault
from daemon.vault.service import VaultService, check_setting
from tests.daemon.vault.support import PASSPHRASE, passphrase


class MemoryKeychain(KeyringBackend):
    """A keychain that keeps its items in memory (priority high enough to be accepted)."""

    priority = 5  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.items: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.items.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.items[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if self.items.pop((service, username), None) is None:
            raise PasswordDeleteError(username)


def no_keychain() -> KeySource:
    raise VaultLocked("no keychain here", reason="no_keychain", backend="fail.Keyring")


def test_without_a_keychain_there_is_no_vault_until_one_appears(db_path: Path) -> None:
    memory = MemoryKeychain()
    reachable = False

    def keychain() -> KeySource:
        return KeychainKeySource(memory) if reachable else no_keychain()

    service = VaultService(db_path, keychain)
    service.start()
    status = service.status()
    assert (status["initialized"], status["locked"], status["reason"]) == (
        False,
        True,
        "not_initialized",
    )
    with pytest.raises(VaultLocked) as locked:
        service.require()
    assert "hearth vault init --passphrase" in locked.value.message
    assert not db_path.exists()

    reachable = True  # e.g. the desktop session's keychain came up after the daemon
    vault = service.require()
    assert vault.key_kind == "keychain" and len(memory.items) == 1
    service.close()
    with pytest.raises(VaultLocked):
        service.require()


def test_a_passphrase_vault_waits_for_unlock_and_a_wrong_one_changes_nothing(
    db_path: Path,
) -> None:
    with Vault.create(db_path, passphrase()) as v:
        conv = v.new_conversation("kept")
    service = VaultService(db_path, no_keychain)
    service.start()
    assert service.status()["reason"] == "passphrase_locked"
    before = db_path.read_bytes()

    with pytest.raises(WrongPassphrase):
        service.unlock("not it")
    with pytest.raises(InvalidParams):
        service.unlock(None)
    assert db_path.read_bytes() == before
    assert service.status()["locked"] is True

    service.unlock(PASSPHRASE)
    assert service.require().get_conversation(conv)["title"] == "kept"
    with pytest.raises(InvalidParams):  # it exists: changing its protection is rotate's job
        service.init("another")
    service.close()


def test_purge_expired_follows_the_retention_setting(db_path: Path) -> None:
    with Vault.create(db_path, passphrase()) as v:
        now = time.time()
        _, fresh = v.import_conversations(
            [{"title": "old", "updated": now - 10 * 86400}, {"title": "fresh", "updated": now}]
        )
    service = VaultService(db_path, no_keychain)
    assert service.purge_expired() == 0  # locked: nothing to do, no error
    service.unlock(PASSPHRASE)
    assert service.purge_expired() == 0  # retention_days null: keep forever
    service.require().set_setting("retention_days", check_setting("retention_days", 7))
    assert service.purge_expired() == 1
    assert [c["id"] for c in service.require().list_conversations()] == [fresh]
    service.close()


@pytest.mark.parametrize(
    ("key", "value"),
    [("keep_history", 1), ("keep_history", None), ("retention_days", 0), ("retention_days", True),
     ("retention_days", "30"), ("retention_days", 40000), ("theme", "dark")],
)  # fmt: skip
def test_settings_outside_their_range_are_refused(key: str, value: object) -> None:
    with pytest.raises(InvalidParams):
        check_setting(key, value)


def test_an_unlocked_vault_keeps_no_copy_of_the_passphrase(db_path: Path) -> None:
    Vault.create(db_path, passphrase()).close()
    service = VaultService(db_path, no_keychain)
    service.start()
    service.unlock(PASSPHRASE)
    vault = service.require()
    vault.delete_conversation(vault.new_conversation("x"))  # a shred needs only the KEK
    secret = PASSPHRASE.encode()
    sources = [o for o in gc.get_objects() if isinstance(o, PassphraseKeySource)]
    assert sources  # the open vault's key source is one of them
    for source in sources:
        held = [v for v in vars(source).values() if isinstance(v, bytes | bytearray)]
        assert not any(secret in value for value in held)
    service.close()
    reopened = VaultService(db_path, no_keychain)
    reopened.start()
    reopened.unlock(PASSPHRASE)  # still the same passphrase: nothing was lost by forgetting
    assert reopened.require().list_conversations() == []
    reopened.close()
