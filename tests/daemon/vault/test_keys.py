"""Key sources: unusable keychains are refused; a wrong passphrase changes nothing."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
import unicodedata
from pathlib import Path

import pytest
from keyring.backend import KeyringBackend
from keyring.backends import fail, null

from daemon.errors import IntegrityError, VaultLocked, WrongPassphrase
from daemon.vault import KeychainKeySource, PassphraseKeySource, Vault
from tests.daemon.vault.support import REPO, files_under, passphrase

REFUSE_SCRIPT = """
import json
from keyring.backends.chainer import ChainerBackend
from daemon.errors import VaultLocked
from daemon.vault import KeychainKeySource
try:
    KeychainKeySource({backend})
    print(json.dumps({{"refused": False}}))
except VaultLocked as exc:
    print(json.dumps({{"refused": True, "message": exc.message, **exc.data}}))
"""


def _refusal_in_subprocess(tmp_path: Path, backend: str, **env: str) -> dict[str, str]:
    """Build a KeychainKeySource in a fresh process with no session bus to find."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DBUS", "PYTHON_KEYRING"))}
    clean.update(HOME=str(tmp_path), XDG_RUNTIME_DIR=str(tmp_path), PYTHONPATH=str(REPO), **env)
    out = subprocess.run(
        [sys.executable, "-c", REFUSE_SCRIPT.format(backend=backend)],
        env=clean,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result: dict[str, str] = json.loads(out.stdout)
    return result


def test_the_fail_backend_is_refused_with_advice_to_use_a_passphrase() -> None:
    with pytest.raises(VaultLocked) as refused:
        KeychainKeySource(backend=fail.Keyring())
    assert "passphrase" in refused.value.message
    assert refused.value.data == {
        "reason": "no_keychain",
        "backend": "keyring.backends.fail.Keyring",
    }


def test_the_fail_backend_chosen_through_the_environment_is_refused(tmp_path: Path) -> None:
    result = _refusal_in_subprocess(
        tmp_path, "", PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring"
    )
    assert result["refused"]
    assert result["backend"] == "keyring.backends.fail.Keyring"
    assert "passphrase" in result["message"]


def test_a_chainer_with_no_viable_backend_is_refused(tmp_path: Path) -> None:
    result = _refusal_in_subprocess(tmp_path, "ChainerBackend()")
    assert result["refused"]
    assert result["backend"] == "keyring.backends.chainer.ChainerBackend"


def test_the_null_backend_is_refused() -> None:
    with pytest.raises(VaultLocked):
        KeychainKeySource(backend=null.Keyring())


class LowPriorityFileKeyring(KeyringBackend):
    """Ranks itself as keyrings.alt's PlaintextKeyring does (0.5): a last resort."""

    priority = 0.5  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.items: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.items.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.items[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.items.pop((service, username), None)


def test_a_backend_that_ranks_itself_as_a_last_resort_is_refused() -> None:
    with pytest.raises(VaultLocked):
        KeychainKeySource(backend=LowPriorityFileKeyring())


def test_a_wrong_passphrase_raises_and_leaves_every_file_byte_identical(db_path: Path) -> None:
    with Vault.create(db_path, passphrase("right")) as v:
        v.append_message(v.new_conversation("t"), "user", "x")
    before = files_under(db_path.parent)

    with pytest.raises(WrongPassphrase) as wrong:
        Vault.open(db_path, passphrase("guess-7431"))

    assert "guess-7431" not in str(wrong.value.to_rpc())  # the attempt is not echoed
    assert files_under(db_path.parent) == before
    with Vault.open(db_path, passphrase("right")) as v:
        assert len(v.list_conversations()) == 1


def test_the_same_passphrase_typed_in_another_unicode_form_opens_the_vault(db_path: Path) -> None:
    composed = unicodedata.normalize("NFC", "crème brûlée")
    Vault.create(db_path, passphrase(composed)).close()
    decomposed = unicodedata.normalize("NFD", composed)
    assert decomposed != composed
    Vault.open(db_path, passphrase(decomposed)).close()


def test_a_header_demanding_huge_scrypt_memory_is_refused_at_once(db_path: Path) -> None:
    Vault.create(db_path, passphrase()).close()
    with sqlite3.connect(db_path) as conn:
        params = json.loads(conn.execute("SELECT kek_params FROM header").fetchone()[0])
        conn.execute("UPDATE header SET kek_params = ?", (json.dumps({**params, "n": 2**30}),))
    started = time.monotonic()
    with pytest.raises(IntegrityError):
        Vault.open(db_path, passphrase())
    assert time.monotonic() - started < 1


def test_production_scrypt_parameters_are_what_the_header_records(db_path: Path) -> None:
    Vault.create(db_path, PassphraseKeySource("hunter2-secret")).close()
    with sqlite3.connect(db_path) as conn:
        params = json.loads(conn.execute("SELECT kek_params FROM header").fetchone()[0])
    assert (params["kdf"], params["n"], params["r"], params["p"]) == ("scrypt", 2**17, 8, 1)
    assert b"hunter2-secret" not in db_path.read_bytes()
    assert repr(PassphraseKeySource("hunter2")) == "PassphraseKeySource(<hidden>)"


def test_a_passphrase_source_derives_one_key_then_forgets_the_passphrase(db_path: Path) -> None:
    source = passphrase()
    with Vault.create(db_path, source) as v:
        assert not source.holds_passphrase
        v.delete_conversation(v.new_conversation("x"))  # a passphrase shred reuses the KEK
    header = sqlite3.connect(db_path).execute("SELECT kek_params FROM header").fetchone()[0]
    with pytest.raises(VaultLocked) as again:
        source.load_kek("any", json.loads(header))
    assert again.value.data["reason"] == "passphrase_forgotten"
