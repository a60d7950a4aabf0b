"""AES-256-GCM sealing of single records, bound to the place they are stored.

Each record gets a fresh random 96-bit nonce and associated data naming its table,
row, key id and schema version. A valid ciphertext copied into another row, another
table or under another key therefore fails to open — it never shows someone else's
text — and any flipped bit fails the GCM tag. Either way the caller gets an
``IntegrityError`` naming the record, never garbage.

Stored form: ``nonce (12 bytes) || ciphertext || tag (16 bytes)`` in one BLOB.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from daemon.errors import IntegrityError

SCHEMA = 1
KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16


def new_key() -> bytes:
    """A fresh random 256-bit key."""
    return os.urandom(KEY_BYTES)


def new_id() -> str:
    """A random identifier (64 bits): for keys, conversations and vaults."""
    return secrets.token_hex(8)


def associated_data(table: str, row: str | int, key_id: str) -> bytes:
    """What a record is bound to. Length-prefixed, so no two tuples encode alike (and
    cheaper than JSON: search computes this for every record it scans)."""
    r = str(row)
    return f"hearth-vault:{SCHEMA}:{len(table)}:{table}:{len(r)}:{r}:{key_id}".encode()


def record_failed(table: str, row: str | int) -> IntegrityError:
    return IntegrityError(
        f"The vault record {table}#{row} failed authentication: it was altered or damaged "
        "on disk, so it is not shown. Restore the vault from a backup, or delete this record.",
        table=table,
        row=str(row),
    )


class Sealer:
    """One key and its id: seals and opens the records stored under that key.

    It also derives keyed lookup tags (HMAC-SHA256 under a subkey), so records found
    by name — settings, plugin data — do not store their names in the clear.
    """

    __slots__ = ("_aead", "_lookup_key", "key_id")

    def __init__(self, key: bytes, key_id: str) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError("AES-256-GCM needs a 32-byte key")
        self._aead = AESGCM(key)
        self._lookup_key = hmac.digest(key, b"hearth-vault/lookup", hashlib.sha256)
        self.key_id = key_id

    def __repr__(self) -> str:
        return f"Sealer(key_id={self.key_id!r})"

    def seal(self, table: str, row: str | int, plaintext: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        ad = associated_data(table, row, self.key_id)
        return nonce + self._aead.encrypt(nonce, plaintext, ad)

    def open(self, table: str, row: str | int, sealed: bytes) -> bytes:
        if len(sealed) < NONCE_BYTES + TAG_BYTES:
            raise record_failed(table, row)
        ad = associated_data(table, row, self.key_id)
        try:
            return self._aead.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], ad)
        except InvalidTag:
            raise record_failed(table, row) from None

    def seal_json(self, table: str, row: str | int, value: Any) -> bytes:
        return self.seal(table, row, json.dumps(value, ensure_ascii=False).encode())

    def open_json(self, table: str, row: str | int, sealed: bytes) -> Any:
        return json.loads(self.open(table, row, sealed))

    def lookup(self, name: str) -> bytes:
        """A stable tag for ``name`` that reveals nothing without the key."""
        return hmac.digest(self._lookup_key, name.encode(), hashlib.sha256)
