"""The audit log's cryptography, shared by the writer (audit.py) and the verifier (verify.py).

Every record — the genesis record that begins a log, each entry, each checkpoint —
carries ``n`` (its place in the log), ``prev_hash`` (the previous record's ``hash``) and
its own ``hash``: SHA-256 of its canonical JSON without the ``hash`` field. Changing,
removing or moving any record, checkpoints included, breaks the chain.

The genesis record and checkpoints are also signed (Ed25519, over every field but
``hash`` and ``sig``): without the key nobody can rebuild the chain and re-vouch for it.
A checkpoint vouches for ``count`` entries and ``records`` records ending at ``head``, in
the log ``log_id``; the copy kept outside the log is the same, without a place in it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

GENESIS = "0" * 64  # the prev_hash of the first record
_SIGNED_CONTEXT = b"hearth-audit-signed/2\n"


def canonical(obj: dict[str, Any]) -> bytes:
    """One byte string per value: sorted keys, no spaces, so hashes are reproducible."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def entry_hash(record: dict[str, Any]) -> str:
    """The hash of any record (entry, checkpoint, genesis): everything but ``hash``."""
    return hashlib.sha256(canonical({k: v for k, v in record.items() if k != "hash"})).hexdigest()


def key_id(public_key: Ed25519PublicKey) -> str:
    """A short fingerprint, so a record signed by another key is named as such."""
    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def _payload(record: dict[str, Any]) -> bytes:
    return _SIGNED_CONTEXT + canonical(
        {k: v for k, v in record.items() if k not in ("hash", "sig")}
    )


def sign(key: Ed25519PrivateKey, record: dict[str, Any]) -> dict[str, Any]:
    """``record`` with the key's id and a signature over all its fields (set ``hash`` after)."""
    signed = {**record, "key_id": key_id(key.public_key())}
    signed["sig"] = key.sign(_payload(signed)).hex()
    return signed


def sign_checkpoint(
    key: Ed25519PrivateKey, log_id: str, count: int, records: int, head: str, time: float
) -> dict[str, Any]:
    """A checkpoint as kept outside the log: ``count`` entries in ``records`` records."""
    checkpoint = {
        "type": "checkpoint",
        "log_id": log_id,
        "count": count,
        "records": records,
        "head": head,
        "time": time,
    }
    return sign(key, checkpoint)


def signature_problem(record: dict[str, Any], public_key: Ed25519PublicKey) -> str | None:
    """Why ``record`` is not genuinely signed by ``public_key``, or None when it is."""
    sig = record.get("sig")
    if not isinstance(sig, str):
        return "it has no signature"
    expected = key_id(public_key)
    if record.get("key_id") != expected:
        return f"it was signed by another key ({record.get('key_id')}, expected {expected})"
    try:
        public_key.verify(bytes.fromhex(sig), _payload(record))
    except (InvalidSignature, ValueError):
        return "its signature does not match its contents"
    return None
