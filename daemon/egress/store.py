"""Where audit records and the latest checkpoint are kept, behind two tiny interfaces.

The log only needs "append these bytes durably" and "give me every record back", so it
can move into the encrypted vault later without touching the chain logic. The latest
checkpoint lives *elsewhere* (keychain, or a sealed file beside the log): cutting the
end off the log, or deleting it, then leaves a checkpoint vouching for records that
are gone. Each record is appended with its place (``n``) in the log ``log_id``.

The daemon stacks them: :class:`SealedRecordStore` (each record encrypted) over a
:class:`FileRecordStore`, and a :class:`SecretCheckpointStore` in its secret store.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

if TYPE_CHECKING:
    from daemon.egress.secrets import Secrets


class RecordStore(Protocol):
    def append(self, record: bytes, log_id: str, n: int) -> None:
        """Store record ``n`` of log ``log_id`` durably before returning; raise (and store
        nothing) on failure."""

    def records(self) -> Iterator[bytes | None]:
        """Every complete record, oldest first; None for one that failed authentication."""

    def discard_torn_tail(self) -> int:
        """Drop an unfinished last record left by a crash; return how many bytes went."""

    def close(self) -> None: ...


class CheckpointStore(Protocol):
    def load(self) -> bytes | None: ...

    def save(self, checkpoint: bytes) -> None: ...


def fsync_dir(path: Path) -> None:
    """Make a file's creation or rename durable (the directory entry is data too)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_private(path: Path, data: bytes) -> None:
    """Replace ``path`` atomically and durably with ``data``, readable by this user only."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)


class FileRecordStore:
    """One record per line in a 0600 file, each append written whole and fsynced."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def _open(self) -> int:
        if self._fd is None:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            created = not self.path.exists()
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
            self._fd = os.open(self.path, flags, 0o600)
            if created:
                fsync_dir(self.path.parent)
        return self._fd

    def append(self, record: bytes, log_id: str = "", n: int = 0) -> None:
        if b"\n" in record:
            raise ValueError("an audit record may not contain a newline")
        fd = self._open()
        size = os.fstat(fd).st_size
        data = record + b"\n"
        try:
            while data:
                data = data[os.write(fd, data) :]
            os.fsync(fd)
        except OSError:
            # Disk full or I/O error: cut the half-written record off so the next
            # append does not glue onto it.
            os.ftruncate(fd, size)
            raise

    def records(self) -> Iterator[bytes | None]:
        try:
            with open(self.path, "rb") as file:
                for line in file:
                    if not line.endswith(b"\n"):
                        return  # torn tail: still being written, or left by a crash
                    yield line[:-1]
        except FileNotFoundError:
            return

    def discard_torn_tail(self) -> int:
        try:
            with open(self.path, "rb+") as file:
                end = pos = file.seek(0, os.SEEK_END)
                keep = 0
                while pos > 0:  # scan back from the end for the last newline
                    step = min(pos, 1 << 16)
                    pos -= step
                    file.seek(pos)
                    newline = file.read(step).rfind(b"\n")
                    if newline >= 0:
                        keep = pos + newline + 1
                        break
                if keep < end:
                    file.truncate(keep)
                    os.fsync(file.fileno())
                return end - keep
        except FileNotFoundError:
            return 0

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class FileCheckpointStore:
    """The latest checkpoint in its own small file, replaced atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> bytes | None:
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return None

    def save(self, checkpoint: bytes) -> None:
        write_private(self.path, checkpoint)


class SealedRecordStore:
    """Records encrypted one by one (AES-256-GCM) on top of another store.

    Stored form: ``{log_id}:{n}:{base64(nonce || ciphertext || tag)}``. The associated
    data binds each record to its place ``n`` and to the log: the log id of the file's
    *first* line, for every line. So a record cannot be moved, or copied in from another
    log, and a record that does not open — inserted plaintext, a flipped bit, a record
    from elsewhere — is handed on as None: an integrity failure at its place in the log,
    never a record taken at its word.
    """

    _AAD = b"hearth-audit-record/2\0"

    def __init__(self, inner: RecordStore, key: bytes) -> None:
        self._inner = inner
        self._aead = AESGCM(key)

    def _aad(self, log_id: str, n: int) -> bytes:
        return self._AAD + log_id.encode() + b"\0" + str(n).encode()

    def seal(self, record: bytes, log_id: str, n: int) -> bytes:
        nonce = os.urandom(12)
        sealed = base64.b64encode(nonce + self._aead.encrypt(nonce, record, self._aad(log_id, n)))
        return f"{log_id}:{n}:".encode() + sealed

    def open(self, stored: bytes, log_id: str | None = None) -> bytes | None:
        """The plain record, or None when it does not open as part of log ``log_id``
        (default: the log its own label names)."""
        try:
            own_log, n, payload = stored.split(b":", 2)
            raw = base64.b64decode(payload, validate=True)
            aad = self._aad(own_log.decode("ascii") if log_id is None else log_id, int(n))
            return self._aead.decrypt(raw[:12], raw[12:], aad)
        except (InvalidTag, ValueError):
            return None

    def append(self, record: bytes, log_id: str, n: int) -> None:
        self._inner.append(self.seal(record, log_id, n), log_id, n)

    def records(self) -> Iterator[bytes | None]:
        log_id: str | None = None
        for stored in self._inner.records():
            if stored is not None and log_id is None:
                log_id = stored.partition(b":")[0].decode("ascii", "replace")
            yield None if stored is None else self.open(stored, log_id)

    def discard_torn_tail(self) -> int:
        return self._inner.discard_torn_tail()

    def close(self) -> None:
        self._inner.close()


class SecretCheckpointStore:
    """The latest checkpoint kept as a secret (keychain, or sealed apart from the log)."""

    def __init__(self, secrets: Secrets, name: str = "audit-checkpoint") -> None:
        self._secrets = secrets
        self._name = name

    def load(self) -> bytes | None:
        return self._secrets.get(self._name)

    def save(self, checkpoint: bytes) -> None:
        self._secrets.put(self._name, checkpoint)
