"""The daemon's vault: opened at start when it can be, otherwise locked with the way out.

- A keychain-protected vault opens at start, in a thread of its own: the OS keychain may
  take seconds to answer, or never answer (a stuck gnome-keyring), and the daemon serves
  meanwhile. Until it answers the vault reports itself ``starting`` (then
  ``keychain_timeout``); it opens as soon as the keychain answers, and an attempt that
  failed is retried on use. With no vault yet, one is created under the keychain — unless
  ``keyring`` offers no backend that keeps secrets (a headless box): then there is no
  vault, never a key file, until the user runs ``hearth vault init --passphrase``.
- A passphrase-protected vault stays locked until ``vault.unlock``, then stays open for
  the daemon's lifetime. The passphrase itself is never kept, logged or echoed.

``require()`` gives the open vault or raises ``VaultLocked`` saying what to do. Every
method here is synchronous and thread-safe: the daemon calls them with
``asyncio.to_thread``. None waits more than ``KEYCHAIN_WAIT`` for a keychain attempt in
flight, so a hung keychain never holds a request, the retention sweep or shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from daemon.errors import HearthError, InvalidParams, VaultLocked
from daemon.vault.db import OwedCheckpoint
from daemon.vault.keys import KeychainKeySource, KeySource, PassphraseKeySource
from daemon.vault.store import Vault

log = logging.getLogger(__name__)

# The settings the daemon knows, with their defaults; their values live in the vault.
SETTINGS: dict[str, Any] = {"keep_history": True, "retention_days": None}
PURGE_INTERVAL = 3600.0  # seconds between retention sweeps (one also runs at start)
STORE_FALSE = 'Chats sent with "store": false still work meanwhile.'
KEYCHAIN_WAIT = 1.0  # seconds a request waits for a keychain attempt in flight
KEYCHAIN_SLOW = 5.0  # an attempt older than this is reported as the keychain not answering


def known_setting(key: str) -> str:
    if key not in SETTINGS:
        raise InvalidParams(f"unknown setting {key!r}; known: {', '.join(SETTINGS)}", field="key")
    return key


def check_setting(key: str, value: Any) -> Any:
    """``value`` if it is valid for the known setting ``key``; InvalidParams otherwise."""
    known_setting(key)
    if key == "keep_history" and not isinstance(value, bool):
        raise InvalidParams("keep_history must be true or false", field="value")
    if key == "retention_days" and value is not None:
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not number or not 0 < value <= 36500:
            raise InvalidParams(
                "retention_days must be null (keep forever) or a number of days from 0 to 36500",
                field="value",
            )
    return value


def _not_initialized(cause: VaultLocked) -> VaultLocked:
    offered = cause.data.get("backend")
    why = f"keyring offers only {offered}" if offered else cause.message
    return VaultLocked(
        "There is no vault to keep conversations in, and no usable OS keychain to protect "
        f"one ({why}). Run `hearth vault init --passphrase` to keep them encrypted under a "
        f"passphrase. {STORE_FALSE}",
        reason="not_initialized",
        keychain=cause.data.get("reason"),
    )


def _passphrase_locked() -> VaultLocked:
    return VaultLocked(
        "The vault is locked: it is protected by a passphrase. Run `hearth vault unlock` "
        f"to open it. {STORE_FALSE}",
        reason="passphrase_locked",
    )


class VaultService:
    """Owns the daemon's one ``Vault`` (or the reason there is none open).

    ``keychain`` builds the keychain key source; tests may swap it.
    """

    def __init__(self, path: Path, keychain: Callable[[], KeySource] = KeychainKeySource) -> None:
        self.path = path
        self._keychain = keychain
        self._lock = threading.Lock()  # held while the vault is opened, created or rekeyed
        self._meta = threading.Lock()  # guards _opening only: never held across I/O
        self._vault: Vault | None = None
        self._why: HearthError | None = None  # why it is not open
        self._closed = False
        self._opening: threading.Event | None = None  # set when the attempt in flight ends
        self._opening_since = 0.0

    # -- state -------------------------------------------------------------------------

    def start(self) -> None:
        """Begin opening (or creating) a keychain vault in the background; returns at once.

        A passphrase vault waits for ``unlock``."""
        self._attempt()

    def require(self) -> Vault:
        """The open vault, or VaultLocked saying why not and what to do."""
        waiting = self._settle()
        if waiting is not None:
            raise waiting
        with self._locked_briefly():
            if self._vault is None:
                raise self._locked()
            return self._vault

    def status(self) -> dict[str, Any]:
        locked = self._settle()  # report what is true now
        try:
            protection = Vault.protection(self.path)
        except HearthError:
            protection = None
        if locked is None:
            try:
                with self._locked_briefly():
                    locked = None if self._vault is not None else self._locked()
            except VaultLocked as waiting:
                locked = waiting
        vault = self._vault
        owed = vault.checkpoint_owed if vault else OwedCheckpoint(self.path).owed
        return {
            "path": str(self.path),
            "initialized": protection is not None,
            "locked": locked is not None,
            "protection": protection,
            "reason": locked.data.get("reason") if locked else None,
            "message": locked.message if locked else None,
            "checkpoint_owed": owed,
        }

    def state(self) -> dict[str, Any]:
        """What the daemon's ``status`` shows, at once: never waits for the keychain."""
        if self._vault is not None:
            return {"state": "open", "reason": None}
        waiting = self._waiting()
        if waiting is not None:
            return {"state": "starting", "reason": waiting.data["reason"]}
        return {"state": "locked", "reason": self._reason()}

    def close(self) -> None:
        self._closed = True  # an attempt still waiting on the keychain closes what it opens
        if not self._lock.acquire(timeout=KEYCHAIN_WAIT):
            log.warning("vault: the keychain never answered; closing without it")
            return
        try:
            if self._vault is not None:
                self._vault.close()
                self._vault = None
            self._why = VaultLocked("The daemon is shutting down.", reason="closed")
        finally:
            self._lock.release()

    # -- key management ----------------------------------------------------------------

    def init(self, passphrase: str | None) -> None:
        """Create the vault: under ``passphrase``, or under the OS keychain when None."""
        with self._locked_briefly():
            if Vault.is_initialized(self.path):
                raise InvalidParams(
                    "A vault already exists. To protect it differently, use "
                    "`hearth vault rotate` (with --passphrase for a passphrase).",
                    reason="exists",
                )
            source = self._keychain() if passphrase is None else _passphrase(passphrase)
            self._vault, self._why = Vault.create(self.path, source), None
            log.info("vault created (%s)", source.kind)

    def unlock(self, passphrase: str | None) -> None:
        """Open a locked vault; a wrong passphrase raises WrongPassphrase and changes nothing."""
        with self._locked_briefly():
            if self._vault is not None:
                return
            protection = Vault.protection(self.path)
            if protection is None:
                raise _not_initialized(VaultLocked("there is no vault yet"))
            if protection == "passphrase":
                if passphrase is None:
                    raise InvalidParams("this vault needs its passphrase", field="passphrase")
                self._vault, self._why = Vault.open(self.path, _passphrase(passphrase)), None
            else:
                self._vault, self._why = Vault.open(self.path, self._keychain()), None
            log.info("vault unlocked (%s)", protection)

    def rotate(self, passphrase: str | None, keychain: bool, reencrypt: bool) -> None:
        """Protect the open vault with a new key-encryption key (and maybe new data keys)."""
        vault = self.require()
        if passphrase is not None and keychain:
            raise InvalidParams("give a new passphrase or keychain, not both", field="keychain")
        if passphrase is None and not keychain and vault.key_kind == "passphrase":
            raise InvalidParams(
                "a passphrase vault is rotated to a new passphrase (or to the keychain)",
                field="passphrase",
            )
        source = self._keychain() if passphrase is None else _passphrase(passphrase)
        vault.rotate(source, reencrypt=reencrypt)
        log.info("vault rotated to %s%s", source.kind, " (re-encrypted)" if reencrypt else "")

    # -- settings and retention --------------------------------------------------------

    def setting(self, key: str) -> Any:
        return self.require().get_setting(key, SETTINGS[key])

    def purge_expired(self) -> int:
        """Crypto-shred conversations older than ``retention_days``; how many. 0 if locked."""
        vault = self._vault
        if vault is None:
            return 0
        days = vault.get_setting("retention_days", None)
        return 0 if days is None else vault.purge_older_than(float(days))

    # -- internals ---------------------------------------------------------------------

    def _attempt(self) -> threading.Event:
        """The attempt to open with the keychain in flight, or a new one in a thread.

        Only this thread calls the keychain while the vault is closed, so a keychain that
        never answers holds one thread, never a request."""
        with self._meta:
            if self._opening is None or self._opening.is_set():
                done = threading.Event()
                self._opening, self._opening_since = done, time.monotonic()
                threading.Thread(
                    target=self._open_in_background, args=(done,), name="vault-open", daemon=True
                ).start()
            return self._opening

    def _settle(self) -> VaultLocked | None:
        """Retry the keychain if the vault is not open; why not, if it still waits on it.

        Waits for the attempt until it counts as slow (a keychain that answers in a few
        seconds, as at login, is waited for), then KEYCHAIN_WAIT at most."""
        if self._vault is not None or self._closed:
            return None
        opening = self._attempt()
        timeout = max(KEYCHAIN_WAIT, self._opening_since + KEYCHAIN_SLOW - time.monotonic())
        return None if opening.wait(timeout) else self._waiting()

    def _open_in_background(self, done: threading.Event) -> None:
        try:
            with self._lock:
                if not self._closed and self._vault is None:
                    self._open_with_keychain()
                if self._closed and self._vault is not None:  # shut down while we waited
                    self._vault.close()
                    self._vault = None
        finally:
            done.set()

    def _waiting(self) -> VaultLocked | None:
        """Why the vault is not open yet while an attempt waits on the keychain, else None."""
        opening = self._opening
        if opening is None or opening.is_set():
            return None
        waited = time.monotonic() - self._opening_since
        if waited < KEYCHAIN_SLOW:
            return VaultLocked(
                f"The vault is opening: waiting for the OS keychain. {STORE_FALSE}",
                reason="starting",
            )
        return VaultLocked(
            f"The vault is not open: the OS keychain has not answered for {waited:.0f} s "
            "(is gnome-keyring, KWallet or the Keychain stuck?). Hearth opens the vault as "
            f"soon as it answers. {STORE_FALSE}",
            reason="keychain_timeout",
        )

    @contextmanager
    def _locked_briefly(self) -> Iterator[None]:
        """Hold the lock, or raise VaultLocked if an attempt holds it longer than
        KEYCHAIN_WAIT (it waits on the keychain)."""
        if not self._lock.acquire(timeout=KEYCHAIN_WAIT):
            raise self._waiting() or VaultLocked(
                f"The vault is busy; try again in a moment. {STORE_FALSE}", reason="busy"
            )
        try:
            yield
        finally:
            self._lock.release()

    def _open_with_keychain(self) -> None:
        before = self._reason()
        try:
            protection = Vault.protection(self.path)
            if protection == "passphrase":
                self._why = _passphrase_locked()
                if before != "passphrase_locked":
                    log.info("vault locked: it waits for its passphrase (`hearth vault unlock`)")
                return
            source = self._keychain()
            if protection is None:
                self._vault = Vault.create(self.path, source)
                log.info("vault created (keychain)")
            else:
                self._vault = Vault.open(self.path, source)
                log.info("vault opened (keychain)")
            self._why = None
        except VaultLocked as exc:
            uninitialized = exc.data.get("reason") == "no_keychain" and not Vault.is_initialized(
                self.path
            )
            self._why = _not_initialized(exc) if uninitialized else exc
        except HearthError as exc:  # a damaged header, a full disk
            self._why = exc
        except Exception as exc:  # unreadable file, … : the daemon runs on without history
            self._why = VaultLocked(
                f"The vault could not be opened ({type(exc).__name__}: {exc}). {STORE_FALSE}",
                reason="open_failed",
            )
        if self._why is not None and self._reason() != before:  # once, not on every retry
            log.warning("vault not open: %s", self._reason())

    def _reason(self) -> str | None:
        return None if self._why is None else str(self._why.data.get("reason", self._why.kind))

    def _locked(self) -> VaultLocked:
        why = self._why or VaultLocked("The vault is not open.", reason="locked")
        if isinstance(why, VaultLocked):
            return VaultLocked(why.message, **why.data)  # a fresh one per request
        data = {**why.data, "reason": why.data.get("reason", why.kind)}
        return VaultLocked(f"The vault cannot be opened: {why.message} {STORE_FALSE}", **data)


def _passphrase(passphrase: str) -> PassphraseKeySource:
    if not passphrase:
        raise InvalidParams("the passphrase must not be empty", field="passphrase")
    return PassphraseKeySource(passphrase)


async def keep_retention(service: VaultService, interval: float = PURGE_INTERVAL) -> None:
    """Crypto-shred expired conversations now and every ``interval`` seconds, forever."""
    while True:
        try:
            purged = await asyncio.to_thread(service.purge_expired)
            if purged:
                log.info("retention: crypto-shredded %d expired conversation(s)", purged)
        except HearthError as exc:
            log.warning("retention sweep failed: %s", exc.kind)
        except Exception as exc:  # keep sweeping; never log record contents
            log.warning("retention sweep failed: %s", type(exc).__name__)
        await asyncio.sleep(interval)
