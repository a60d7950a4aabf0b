"""Where the egress keeps its secrets: the audit log's signing key and data key, its latest
checkpoint, and the API key of a remote model server.

- :class:`KeychainSecrets`: the OS keychain through ``keyring`` (service ``hearth``, one
  item per secret, named after this Hearth home's install id), when a backend that
  really keeps secrets exists (the vault's rule: daemon.vault.keys.usable_backend).
- :class:`SealedFileSecrets`, for machines without one (headless servers, CI): each
  secret AES-256-GCM-sealed in a 0600 file, under a key derived from this machine's id,
  this user's uid and a random salt stored beside the files. That keeps the secrets out
  of a copy of the data dir taken off the machine, but anyone who can read these files
  *on* the machine as this user can derive the key: it is not what a keychain gives,
  and ``net.status`` says so (``secrets_confidential: false``). A machine without a
  machine id (some containers) binds them to the uid alone, so a copy of the data dir
  opens them anywhere: that is recorded when the store is made, warned about at every
  start and shown in ``net.status``, never silently assumed.

Which one a Hearth home uses is decided once and recorded (``secrets.json``), so a
keychain that appears or vanishes later is reported, instead of silently starting over
with new keys (which would make the audit log look forged).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import secrets as random
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from daemon.egress.store import write_private
from daemon.errors import IntegrityError, VaultLocked

log = logging.getLogger(__name__)

SERVICE = "hearth"
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
_MACHINE_ID_FILES = ("/etc/machine-id", "/var/lib/dbus/machine-id")


class Secrets(Protocol):
    kind: str  # "keychain" or "file"

    def get(self, name: str) -> bytes | None: ...

    def put(self, name: str, value: bytes) -> None: ...

    def delete(self, name: str) -> None: ...


def _check_name(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"not a secret name: {name!r}")
    return name


class KeychainSecrets:
    kind = "keychain"

    def __init__(self, backend: object, install_id: str) -> None:
        self._backend = backend
        self._prefix = f"egress-{install_id}-"

    def __repr__(self) -> str:
        return f"KeychainSecrets({type(self._backend).__module__})"

    def _account(self, name: str) -> str:
        return self._prefix + _check_name(name)

    def get(self, name: str) -> bytes | None:
        try:
            stored = self._backend.get_password(SERVICE, self._account(name))  # type: ignore[attr-defined]
        except Exception as exc:  # backends raise their own types (D-Bus, OS errors)
            raise _keychain_failed("read", name, exc) from exc
        if stored is None:
            return None
        try:
            return base64.b64decode(stored, validate=True)
        except ValueError:
            raise IntegrityError(f"the keychain item for the {name} is damaged") from None

    def put(self, name: str, value: bytes) -> None:
        try:
            self._backend.set_password(  # type: ignore[attr-defined]
                SERVICE, self._account(name), base64.b64encode(value).decode()
            )
        except Exception as exc:
            raise _keychain_failed("store", name, exc) from exc
        if self.get(name) != value:  # some backends accept a write and drop it
            raise VaultLocked(f"the OS keychain did not keep the {name} it was given")

    def delete(self, name: str) -> None:
        from keyring.errors import PasswordDeleteError

        try:
            self._backend.delete_password(SERVICE, self._account(name))  # type: ignore[attr-defined]
        except PasswordDeleteError:
            pass  # already gone
        except Exception as exc:
            raise _keychain_failed("delete", name, exc) from exc


def _keychain_failed(action: str, name: str, exc: Exception) -> VaultLocked:
    return VaultLocked(
        f"could not {action} the {name} in the OS keychain ({type(exc).__name__}): "
        "unlock the keychain and try again",
        reason="keychain_error",
    )


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _machine_id(files: tuple[str, ...]) -> bytes:
    for path in files:
        try:
            return Path(path).read_bytes().strip()
        except OSError:
            continue
    return b""


class SealedFileSecrets:
    """Secrets sealed in 0600 files; see the module docstring for what that protects."""

    kind = "file"

    def __init__(self, folder: Path, machine_id_files: tuple[str, ...] = _MACHINE_ID_FILES) -> None:
        self.folder = folder
        self._machine_id_files = machine_id_files
        self._key: AESGCM | None = None
        self._bound = True

    def __repr__(self) -> str:
        return f"SealedFileSecrets({self.folder})"

    @property
    def machine_bound(self) -> bool:
        """Whether the sealing key depends on this machine's id (else on the uid alone)."""
        self._aead()
        return self._bound

    def _aead(self) -> AESGCM:
        if self._key is None:
            salt_file, binding_file = self.folder / "salt", self.folder / "binding"
            machine_id = _machine_id(self._machine_id_files)
            binding = _read(binding_file)
            if binding is None:  # a new store (or one from before this was recorded)
                binding = b"machine-id" if machine_id else b"uid"
                write_private(binding_file, binding)
            salt = _read(salt_file)
            if salt is None:
                salt = random.token_bytes(32)
                write_private(salt_file, salt)
            self._bound = binding == b"machine-id"
            if self._bound and not machine_id:
                raise IntegrityError(
                    f"the secrets in {self.folder} are sealed to this machine's id, and "
                    f"{' and '.join(self._machine_id_files)} cannot be read now: restore it "
                    "(systemd-machine-id-setup), or the audit keys and API key stay shut",
                    reason="no_machine_id",
                )
            if not self._bound:
                log.warning(
                    "this machine has no machine id: the audit keys and remote API key in %s "
                    "are sealed under your uid alone, so a copy of that folder opens them",
                    self.folder,
                )
                machine_id = b""
            ikm = machine_id + b"\0" + str(os.getuid()).encode()
            hkdf = HKDF(hashes.SHA256(), 32, salt, b"hearth-egress-secrets/1")
            self._key = AESGCM(hkdf.derive(ikm))
        return self._key

    def _path(self, name: str) -> Path:
        return self.folder / f"{_check_name(name)}.sealed"

    def get(self, name: str) -> bytes | None:
        try:
            sealed = self._path(name).read_bytes()
        except FileNotFoundError:
            return None
        try:
            return self._aead().decrypt(sealed[:12], sealed[12:], name.encode())
        except (InvalidTag, ValueError):
            raise IntegrityError(
                f"the sealed {name} in {self.folder} cannot be opened: it was altered, or "
                "this data dir comes from another machine or user",
                secret=name,
            ) from None

    def put(self, name: str, value: bytes) -> None:
        nonce = os.urandom(12)
        write_private(self._path(name), nonce + self._aead().encrypt(nonce, value, name.encode()))

    def delete(self, name: str) -> None:
        self._path(name).unlink(missing_ok=True)


def confidentiality(secrets: Secrets) -> str | None:
    """What a user must know about where the secrets are kept (None for a keychain)."""
    if not isinstance(secrets, SealedFileSecrets):
        return None
    if not secrets.machine_bound:
        return (
            "no keychain and no machine id: the audit keys and remote API key are sealed "
            "under your uid alone, so anyone with a copy of the data folder can open them"
        )
    return (
        "no keychain: the audit keys and remote API key are sealed under a key derived from "
        "this machine's id (readable by every local account) and your uid, so they are not "
        "confidential from anyone who can read your files on this machine"
    )


def _usable_keychain() -> object | None:
    try:
        import keyring

        from daemon.vault.keys import usable_backend

        return usable_backend(keyring.get_keyring())
    except VaultLocked:
        return None


def open_secrets(folder: Path) -> Secrets:
    """The secret store of the Hearth home whose egress files are in ``folder``."""
    record = folder / "secrets.json"
    try:
        choice = json.loads(record.read_bytes())
    except FileNotFoundError:
        kind = "keychain" if _usable_keychain() is not None else "file"
        choice = {"kind": kind, "id": random.token_hex(8)}
        write_private(record, json.dumps(choice).encode())
    except ValueError:
        raise IntegrityError(f"{record} is damaged") from None
    if choice.get("kind") == "keychain":
        backend = _usable_keychain()
        if backend is None:
            raise VaultLocked(
                "the audit log's keys are kept in the OS keychain, which is not reachable now; "
                "start the daemon in your desktop session (or unlock the keychain)",
                reason="no_keychain",
            )
        return KeychainSecrets(backend, str(choice["id"]))
    return SealedFileSecrets(folder / "sealed")
