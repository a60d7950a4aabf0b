"""Where the key-encryption key (KEK) comes from: the OS keychain, or a passphrase.

The KEK only wraps the vault's master key. It is never written to a file, a log, the
environment or an exception message. Each KEK has a random id recorded in the vault
header, so a new KEK can be created (rotation, crypto-shredding) while the old one
still opens the vault, and the old one is discarded only once nothing needs it.

- ``KeychainKeySource``: a random 32-byte KEK kept in the OS keychain through
  ``keyring`` (service ``hearth``, one item per KEK id). Backends that would keep it
  in plaintext or not at all are refused, with a pointer to the passphrase mode.
- ``PassphraseKeySource``: scrypt(passphrase, salt); n, r, p and the salt live in the
  vault header. Anyone who can re-derive an old KEK from the passphrase can do so from
  an old header too, which is why this source is not ``renewable``. It derives one KEK
  and then forgets the passphrase (its copy is zeroed), so a daemon that stays unlocked
  for days does not keep it in memory: the KEK is all the vault needs afterwards.
"""

from __future__ import annotations

import base64
import os
import unicodedata
from collections.abc import Mapping
from typing import Any, Protocol

import keyring
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from keyring.backend import KeyringBackend
from keyring.backends.chainer import ChainerBackend
from keyring.errors import PasswordDeleteError

from daemon.errors import IntegrityError, VaultLocked
from daemon.vault.crypto import KEY_BYTES

SERVICE = "hearth"

# Backends that keep secrets in a plain or self-encrypted file next to the user's data,
# or nowhere: a KEK there protects nothing, or is lost.
_REFUSED_MODULES = (
    "keyring.backends.fail",
    "keyring.backends.null",
    "keyrings.alt.file",
    "keyrings.alt.pyfs",
)

SCRYPT_N = 2**17  # 128 MiB with r=8: about 0.4 s on a laptop, hard to brute-force
SCRYPT_LIMITS = {"n": (2**10, 2**20), "r": (1, 32), "p": (1, 16)}


class KeySource(Protocol):
    """Creates, recovers and discards the KEKs of one vault."""

    kind: str  # recorded in the header: "keychain" or "passphrase"
    renewable: bool  # True when a fresh KEK makes old copies of the header unreadable

    def create_kek(self, kek_id: str) -> tuple[bytes, dict[str, Any]]:
        """A new KEK for ``kek_id`` and the public parameters to store in the header."""
        ...

    def load_kek(self, kek_id: str, params: Mapping[str, Any]) -> bytes:
        """The KEK a header names, or VaultLocked when it cannot be had."""
        ...

    def discard(self, kek_id: str) -> None:
        """Forget a KEK that no header uses any more (idempotent)."""
        ...


class KeychainKeySource:
    """A random KEK stored in the OS keychain (Keychain, Secret Service, Credential Locker)."""

    kind = "keychain"
    renewable = True

    def __init__(self, backend: KeyringBackend | None = None) -> None:
        self.backend = usable_backend(keyring.get_keyring() if backend is None else backend)

    def __repr__(self) -> str:
        return f"KeychainKeySource({_describe(self.backend)})"

    def create_kek(self, kek_id: str) -> tuple[bytes, dict[str, Any]]:
        kek = os.urandom(KEY_BYTES)
        try:
            self.backend.set_password(SERVICE, _account(kek_id), base64.b64encode(kek).decode())
        except Exception as exc:  # backends raise their own types (D-Bus, OS errors)
            raise _keychain_failed("store", exc) from exc
        # Some backends accept a write and drop it; find out now, not at the next start.
        if self._read(kek_id) != kek:
            raise VaultLocked(
                "The keychain did not keep the vault key it was given. "
                "Protect the vault with a passphrase instead.",
                reason="keychain_unreliable",
            )
        return kek, {}

    def load_kek(self, kek_id: str, params: Mapping[str, Any]) -> bytes:
        kek = self._read(kek_id)
        if kek is None:
            raise VaultLocked(
                "The keychain holds no key for this vault (it was removed, or this is another "
                "user account or machine). Without it the vault cannot be opened.",
                reason="keychain_key_missing",
            )
        return kek

    def discard(self, kek_id: str) -> None:
        try:
            self.backend.delete_password(SERVICE, _account(kek_id))
        except PasswordDeleteError:
            pass  # already gone
        except Exception as exc:
            raise _keychain_failed("delete", exc) from exc

    def _read(self, kek_id: str) -> bytes | None:
        try:
            stored = self.backend.get_password(SERVICE, _account(kek_id))
        except Exception as exc:
            raise _keychain_failed("read", exc) from exc
        if stored is None:
            return None
        try:
            kek = base64.b64decode(stored, validate=True)
        except ValueError:
            kek = b""
        if len(kek) != KEY_BYTES:
            raise IntegrityError("The vault key in the keychain is damaged.", reason="bad_kek")
        return kek


class PassphraseKeySource:
    """A KEK derived from the user's passphrase with scrypt, for machines without a keychain."""

    kind = "passphrase"
    renewable = False

    def __init__(self, passphrase: str, *, n: int = SCRYPT_N, r: int = 8, p: int = 1) -> None:
        if not passphrase:
            raise ValueError("the passphrase is empty")
        self._cost = {"n": n, "r": r, "p": p}
        if not _cost_ok(self._cost):
            raise ValueError(f"unsupported scrypt parameters {self._cost}")
        # NFC: the same passphrase typed on another keyboard or OS derives the same key.
        # A bytearray, so that it can be zeroed (Python strings cannot: best effort).
        self._secret: bytearray | None = bytearray(
            unicodedata.normalize("NFC", passphrase), "utf-8"
        )

    @property
    def holds_passphrase(self) -> bool:
        """False once the KEK was derived: the passphrase is gone from this object."""
        return self._secret is not None

    def forget(self) -> None:
        """Zero and drop the passphrase (idempotent)."""
        if self._secret is not None:
            self._secret[:] = bytes(len(self._secret))
            self._secret = None

    def __repr__(self) -> str:
        return "PassphraseKeySource(<hidden>)"

    def create_kek(self, kek_id: str) -> tuple[bytes, dict[str, Any]]:
        params: dict[str, Any] = {
            "kdf": "scrypt",
            **self._cost,
            "salt": base64.b64encode(os.urandom(16)).decode(),
        }
        return self.load_kek(kek_id, params), params

    def load_kek(self, kek_id: str, params: Mapping[str, Any]) -> bytes:
        try:
            salt = base64.b64decode(str(params["salt"]), validate=True)
            cost = {name: int(params[name]) for name in SCRYPT_LIMITS}
            ok = params["kdf"] == "scrypt" and 16 <= len(salt) <= 64 and _cost_ok(cost)
        except (KeyError, ValueError, TypeError):
            ok = False
        if not ok:
            raise IntegrityError("The vault header's key-derivation parameters are damaged.")
        if self._secret is None:
            raise VaultLocked(
                "The passphrase was used and forgotten; give it again.",
                reason="passphrase_forgotten",
            )
        kdf = Scrypt(salt=salt, length=KEY_BYTES, n=cost["n"], r=cost["r"], p=cost["p"])
        try:
            return kdf.derive(self._secret)
        finally:
            self.forget()  # one KEK per source: nothing needs the passphrase after this

    def discard(self, kek_id: str) -> None:
        pass  # nothing is stored outside the header


def usable_backend(backend: KeyringBackend) -> KeyringBackend:
    """The backend itself (or a chainer's best member) if it really keeps secrets safe."""
    candidates = list(backend.backends) if isinstance(backend, ChainerBackend) else [backend]
    for candidate in candidates:
        if _viable(candidate):
            return candidate
    raise VaultLocked(
        f"No usable OS keychain was found (keyring offers {_describe(backend)}), so the vault "
        "key cannot be kept safe there. Protect the vault with a passphrase instead, or start "
        "a keychain service (e.g. gnome-keyring or KWallet) and try again.",
        reason="no_keychain",
        backend=_describe(backend),
    )


def discard_orphan(kind: str, kek_id: str, current: KeySource) -> bool:
    """Discard a KEK left by an interrupted rotation; False when its store is unreachable."""
    try:
        if kind == current.kind:
            current.discard(kek_id)
        elif kind == KeychainKeySource.kind:
            KeychainKeySource().discard(kek_id)
        return True
    except VaultLocked:
        return False


def _viable(backend: KeyringBackend) -> bool:
    cls = type(backend)
    if cls.__module__.startswith(_REFUSED_MODULES) or "plaintext" in cls.__name__.lower():
        return False
    try:
        priority = float(cls.priority)
    except Exception:  # backends say "not usable here" by raising from priority
        return False
    return priority >= 1


def _describe(backend: KeyringBackend) -> str:
    cls = type(backend)
    return f"{cls.__module__}.{cls.__name__}"


def _account(kek_id: str) -> str:
    return f"vault-kek-{kek_id}"


def _cost_ok(cost: Mapping[str, int]) -> bool:
    """Power-of-two n, and bounds that keep a tampered header from demanding gigabytes."""
    n = cost["n"]
    in_range = all(low <= cost[name] <= high for name, (low, high) in SCRYPT_LIMITS.items())
    return in_range and n & (n - 1) == 0


def _keychain_failed(action: str, exc: Exception) -> VaultLocked:
    return VaultLocked(
        f"Could not {action} the vault key in the OS keychain ({type(exc).__name__}). "
        "Unlock the keychain and try again, or protect the vault with a passphrase.",
        reason="keychain_error",
    )
