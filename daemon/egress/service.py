"""The daemon's egress, assembled: socket guard, secrets, audit log, settings, gateway.

Built first in serve(), so the guard is up before anything else runs, and closed last,
which writes the shutdown checkpoint. If the audit log cannot be used — it failed
verification, or its keys are out of reach — the daemon still starts, but every outbound
call is refused with the reason: a call that cannot be recorded does not go out. The
log is kept as evidence; the user moves it aside to begin a new one.

Files, under the data dir's ``egress/``: ``audit.log`` (one sealed record per line),
``secrets.json`` (which secret store this home uses) and, without a keychain, ``sealed/``.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from daemon.egress import guard
from daemon.egress.audit import AuditLog
from daemon.egress.changes import changes
from daemon.egress.gateway import Gateway
from daemon.egress.policy import Policy
from daemon.egress.remote import RemoteChat
from daemon.egress.secrets import Secrets, confidentiality, open_secrets
from daemon.egress.settings import (
    NetworkSettings,
    Remote,
    check_proxy,
    check_settings,
    load_settings,
    save_settings,
)
from daemon.egress.store import (
    FileRecordStore,
    SealedRecordStore,
    SecretCheckpointStore,
    fsync_dir,
)
from daemon.egress.verify import verify
from daemon.errors import Cancelled, HearthError, IntegrityError, InvalidParams, VaultLocked
from daemon.paths import Paths

log = logging.getLogger(__name__)

LOG_FILE = "audit.log"
FILE_MODE_ROLLBACK = (
    "no keychain: the checkpoint is sealed in a file beside the log, so restoring an older "
    "copy of the whole data folder cannot be detected"
)
SIGNING_KEY = "audit-signing-key"
LOG_KEY = "audit-log-key"
API_KEY = "remote-api-key"
CLOSE_WAIT = 10.0  # seconds close() waits for calls in flight to end
KEYCHAIN_SLOW = 5.0  # seconds after which a keychain that has not answered is reported
T = TypeVar("T")


def _signing_key(secrets: Secrets) -> tuple[Ed25519PrivateKey, bool]:
    """The log's signing key, and whether it was just made (then no log may exist yet)."""
    raw = secrets.get(SIGNING_KEY)
    fresh = raw is None
    if raw is None:
        key = Ed25519PrivateKey.generate()
        raw = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        secrets.put(SIGNING_KEY, raw)
    return Ed25519PrivateKey.from_private_bytes(raw), fresh


def _log_key(secrets: Secrets) -> bytes:
    """The AES-256 key the log's records are sealed with."""
    key = secrets.get(LOG_KEY)
    if key is None:
        key = os.urandom(32)
        secrets.put(LOG_KEY, key)
    return key


class Egress:
    """Everything outbound, for the daemon's methods: status, policy, log, calls."""

    def __init__(self, folder: Path, settings_file: Path, *, checkpoint_every: int = 64) -> None:
        self.guard = guard.install()  # first: nothing else may open a socket unguarded
        self.folder = folder
        self.closing = threading.Event()
        self._settings_file = settings_file
        self._lock = threading.Lock()
        self._idle = threading.Condition()
        self._in_flight = 0
        self.settings, self.settings_problem = load_settings(settings_file)
        self.secrets: Secrets | None = None
        self._store: SealedRecordStore | None = None
        self._checkpoints: SecretCheckpointStore | None = None
        self._public: Ed25519PublicKey | None = None
        self._signing: Ed25519PrivateKey | None = None
        self.audit: AuditLog | None = None
        self.gateway: Gateway | None = None
        self._checkpoint_every = checkpoint_every
        self.opened = threading.Event()  # set once the log is open, or has failed to
        self._opening_since = time.monotonic()
        self.failure: HearthError | None = VaultLocked(
            "the audit log is opening (its keys come from the OS keychain); try again in a moment",
            reason="starting",
        )
        if self.settings_problem:
            log.error("%s", self.settings_problem)

    def open(self, background: bool = False) -> None:
        """Open the audit log: its keys may wait on the OS keychain, which can hang, so
        the daemon does this in a thread of its own (``background``) and serves meanwhile;
        outbound calls are refused until it is open."""
        if background:
            threading.Thread(target=self.open, name="egress-open", daemon=True).start()
            return
        failure: HearthError | None = None
        try:
            self._open_log(self._checkpoint_every)
            assert self.secrets is not None
            with self._lock:  # network.json, held against the digest the daemon wrote
                self.settings, self.settings_problem = check_settings(
                    self._settings_file, self.settings, self.settings_problem, self.secrets
                )
            if self.settings_problem:
                log.error("%s", self.settings_problem)
        except HearthError as exc:
            failure = exc
            log.error("outbound calls are disabled: %s", exc.message)
        with self._lock:
            if self.audit is not None:
                if self.closing.is_set():  # shut down while the keychain kept us waiting
                    self.audit.close()
                elif failure is None:
                    settings = self.settings
                    self.gateway = Gateway(settings.policy, self.audit, proxy=settings.proxy)
                    self.guard.set_sink(self.audit.append)
            self.failure = failure
            self.opened.set()  # under the lock: close() then sees either state, whole

    def _open_log(self, checkpoint_every: int) -> None:
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.secrets = open_secrets(self.folder)
        key, fresh = _signing_key(self.secrets)
        self._signing, self._public = key, key.public_key()
        self._store = self._log_store()
        self._checkpoints = SecretCheckpointStore(self.secrets)
        self.audit = AuditLog(
            self._store, self._checkpoints, key, checkpoint_every=checkpoint_every, create=fresh
        )

    def _log_store(self) -> SealedRecordStore:
        assert self.secrets is not None
        return SealedRecordStore(FileRecordStore(self.folder / LOG_FILE), _log_key(self.secrets))

    # -- calls -------------------------------------------------------------------------

    def usable_gateway(self) -> Gateway:
        """The gateway, or the reason outbound calls are off."""
        if self.closing.is_set():
            raise Cancelled("the daemon is shutting down")
        if self.gateway is None:
            raise self._disabled()
        return self.gateway

    def run(self, work: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run one piece of outbound work (in a worker thread); close() waits for it, so
        the log gets the outcome of every call that started."""
        with self._idle:
            self._in_flight += 1
        try:
            return work(*args, **kwargs)
        finally:
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()

    def record(self, entry: Mapping[str, object]) -> None:
        """Append an entry to the audit log (runner refusals, policy changes); raises
        when the log is not usable."""
        audit = self.audit
        if audit is None:
            raise self._disabled()
        audit.append(entry)

    def _disabled(self) -> HearthError:
        failure = self.failure or HearthError("the audit log is not open")
        fix = ""
        if isinstance(failure, IntegrityError) and failure.data.get("problem"):
            fix = f" (the log is {self.folder / LOG_FILE}; `hearth audit reset` begins anew)"
        return type(failure)(
            f"outbound calls are off because the audit log cannot be used: {failure.message}" + fix,
            **failure.data,
        )

    def remote_client(self, model: str | None) -> tuple[RemoteChat, str]:
        """The configured remote server's client and the model to ask (``model`` or the
        configured one). Raises when none is configured: there is no silent fallback."""
        remote = self.settings.remote
        if remote is None:
            raise InvalidParams(
                "no remote model server is configured: set one with "
                "`hearth net remote URL --model NAME` (route 'remote' never falls back to local)",
                field="route",
            )
        gateway = self.usable_gateway()
        assert self.secrets is not None
        key = self.secrets.get(API_KEY)
        client = RemoteChat(gateway, remote.url, api_key=key.decode() if key else None)
        return client, model or remote.model

    # -- settings ----------------------------------------------------------------------

    @property
    def policy(self) -> Policy:
        return self.settings.policy

    def _save(self, settings: NetworkSettings, caller: str, key: str | None = None) -> None:
        """Record each change in the audit log, then store and apply ``settings``. A change
        that lets more out is refused when it cannot be recorded."""
        found = changes(self.settings, settings, key)
        if self.audit is None and any(c.loosens for c in found):
            raise self._disabled()
        for change in found:
            if self.audit is not None:
                self.audit.append(
                    {"phase": "policy", "caller": caller, "change": change.text,
                     "host": change.host}
                )  # fmt: skip
            else:
                log.warning("network setting changed, not recorded: %s", change.text)
        save_settings(self._settings_file, settings, self.secrets)
        self.settings, self.settings_problem = settings, None
        if self.gateway is not None:
            self.gateway.policy = settings.policy
            self.gateway.set_proxy(settings.proxy)

    def set_policy(self, policy: Policy, caller: str) -> None:
        with self._lock:
            self._save(replace(self.settings, policy=policy), caller)

    def set_proxy(self, proxy: str | None, caller: str) -> None:
        with self._lock:
            self._save(replace(self.settings, proxy=check_proxy(proxy) if proxy else None), caller)

    def set_remote(self, remote: Remote | None, api_key: str | None, caller: str) -> None:
        """Configure (or with None, forget) the remote server; ``api_key`` "" deletes the
        stored key, None keeps it."""
        with self._lock:
            if self.secrets is None:
                raise self._disabled()
            key = None
            if remote is None or api_key == "":
                key = "deleted" if self.secrets.get(API_KEY) is not None else None
            elif api_key is not None:
                key = "set"
            self._save(replace(self.settings, remote=remote), caller, key)
            if key == "deleted":
                self.secrets.delete(API_KEY)
            elif key == "set" and api_key is not None:
                self.secrets.put(API_KEY, api_key.encode())

    # -- the log -----------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        remote = self.settings.remote
        secrets = self.secrets
        has_key = remote is not None and secrets is not None and bool(secrets.get(API_KEY))
        return {
            "mode": str(self.policy.mode),
            "rules": [{"host": r.host, "caller": r.caller} for r in self.policy.rules],
            "blocked": self.guard.blocked_count,
            "blocked_unrecorded": self.guard.sink_failures,
            "audit": {
                "ok": self.failure is None,
                "state": self.state(),
                "entries": self.audit.count if self.audit else None,
                "problem": self.failure.message if self.failure else None,
                "secrets": self.secrets.kind if self.secrets else None,
                "secrets_confidential": secrets is not None and secrets.kind == "keychain",
                "secrets_note": self._secrets_note(),
            },
            "settings_problem": self.settings_problem,
            "proxy": self.settings.proxy,
            "remote": {"url": remote.url, "model": remote.model, "api_key_set": has_key}
            if remote
            else None,
        }

    def state(self) -> str:
        """``open``; ``starting`` while the keychain is asked, ``keychain_timeout`` once it
        has not answered for KEYCHAIN_SLOW seconds; ``unavailable`` when it failed."""
        if not self.opened.is_set():
            slow = time.monotonic() - self._opening_since > KEYCHAIN_SLOW
            return "keychain_timeout" if slow else "starting"
        return "open" if self.failure is None else "unavailable"

    def _secrets_note(self) -> str | None:
        if self.secrets is None:
            return None
        try:
            return confidentiality(self.secrets)
        except HearthError as exc:
            return exc.message

    def entries(
        self, since: float | None = None, caller: str | None = None, limit: int = 1000
    ) -> list[dict[str, Any]]:
        """The most recent ``limit`` entries that match, oldest first (also from a log that
        failed verification: what it holds is still worth reading)."""
        if self._store is None:
            raise self._disabled()
        found: list[dict[str, Any]] = []
        for raw in self._store.records():
            try:
                record = json.loads(raw) if raw is not None else None
            except ValueError:
                continue
            if not isinstance(record, dict) or record.get("type") != "entry":
                continue
            when = record.get("time")
            if since is not None and not (isinstance(when, int | float) and when >= since):
                continue
            if caller is None or record.get("caller") == caller:
                found.append(record)
        return found[-limit:] if limit else []

    def verify(self) -> dict[str, Any]:
        if self._store is None or self._public is None or self._checkpoints is None:
            message = self._disabled().message
            return {"ok": False, "problem": "unavailable", "bad_seq": None, "detail": message,
                    "summary": message}  # fmt: skip
        started = time.monotonic()
        result = verify(self._store, self._public, self._checkpoints)
        kind = self.secrets.kind if self.secrets else None
        return {
            **result.to_dict(),
            "summary": result.summary(),
            "duration_ms": round((time.monotonic() - started) * 1000, 1),
            "rollback_detectable": kind == "keychain",
            "note": None if kind == "keychain" else FILE_MODE_ROLLBACK,
        }

    def reset_log(self) -> dict[str, Any]:
        """Set a log that failed verification aside, kept as evidence, and begin a new one
        whose genesis record names it. A log that verifies is never reset."""
        with self._lock:
            if self._store is None or self._checkpoints is None or self._signing is None:
                raise self._disabled()
            assert self._public is not None
            state = verify(self._store, self._public, self._checkpoints)
            if state.ok:
                raise InvalidParams(
                    "the audit log verifies: there is nothing to reset", reason="log_ok"
                )
            log_file = self.folder / LOG_FILE
            kept = self.folder / time.strftime("audit-%Y%m%dT%H%M%SZ.log", time.gmtime())
            if log_file.exists():
                os.replace(log_file, kept)
                fsync_dir(self.folder)
            previous = {
                "log_id": state.log_id,
                "entries": state.entries,
                "problem": state.problem,
                "kept": kept.name if kept.exists() else None,
            }
            self._store = self._log_store()
            self.audit = AuditLog(
                self._store, self._checkpoints, self._signing,
                checkpoint_every=self._checkpoint_every, create=True, previous=previous,
            )  # fmt: skip
            self.failure = None
            self.gateway = Gateway(self.settings.policy, self.audit, proxy=self.settings.proxy)
            self.guard.set_sink(self.audit.append)
            log.warning("audit log reset: the old one (%s) is kept as %s", state.problem, kept)
        return {**self.verify(), "kept": previous["kept"]}

    def close(self) -> None:
        """Refuse new calls, stop recording refusals, write the shutdown checkpoint."""
        with self._lock:
            self.closing.set()  # pulls and streamed answers stop at their next chunk
        with self._idle:
            self._idle.wait_for(lambda: self._in_flight == 0, CLOSE_WAIT)
        self.guard.set_sink(None)
        if self.gateway is not None:
            self.gateway.close()
        if self.audit is not None and self.opened.is_set():
            self.audit.close()


@contextmanager
def open_egress(paths: Paths, background: bool = False) -> Iterator[Egress]:
    """The daemon's egress, its log opened (in a thread of its own when ``background``)."""
    egress = Egress(paths.data / "egress", paths.config / "network.json")
    egress.open(background)
    try:
        yield egress
    finally:
        egress.close()
