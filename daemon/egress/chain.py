"""The audit log's cryptography, shared by the writer (audit.py) and the verifier (verify.py).

Each entry carries ``prev_hash`` (the previous entry's ``hash``) and its own ``hash``:
SHA-256 of its canonical JSON without the ``hash`` field, so changing any byte of any
entry breaks the chain. A checkpoint is an Ed25519 signature over (count, head hash):
without the key nobody can rewrite the chain and re-vouch for it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

GENESIS = "0" * 64
_CHECKPOINT_CONTEXT = b"hearth-audit-checkpoint/1\n"


def canonical(obj: dict[str, Any]) -> bytes:
    """One byte string per value: sorted keys, no spaces, so hashes are reproducible."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def entry_hash(entry: dict[str, Any]) -> str:
    return hashlib.sha256(canonical({k: v for k, v in entry.items() if k != "hash"})).hexdigest()


def key_id(public_key: Ed25519PublicKey) -> str:
    """A short fingerprint, so a checkpoint signed by another key is named as such."""
    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def _payload(checkpoint: dict[str, Any]) -> bytes:
    signed = {k: checkpoint.get(k) for k in ("count", "head", "time", "key_id")}
    return _CHECKPOINT_CONTEXT + canonical(signed)


def sign_checkpoint(key: Ed25519PrivateKey, count: int, head: str, time: float) -> dict[str, Any]:
    checkpoint: dict[str, Any] = {
        "type": "checkpoint",
        "count": count,
        "head": head,
        "time": time,
        "key_id": key_id(key.public_key()),
    }
    checkpoint["sig"] = key.sign(_payload(checkpoint)).hex()
    return checkpoint


def signature_problem(checkpoint: dict[str, Any], public_key: Ed25519PublicKey) -> str | None:
    """Why ``checkpoint`` is not a genuine one from ``public_key``, or None when it is."""
    count, head, sig = checkpoint.get("count"), checkpoint.get("head"), checkpoint.get("sig")
    if not (isinstance(count, int) and isinstance(head, str) and isinstance(sig, str)):
        return "it is malformed (count, head or signature missing)"
    expected = key_id(public_key)
    if checkpoint.get("key_id") != expected:
        return f"it was signed by another key ({checkpoint.get('key_id')}, expected {expected})"
    try:
        public_key.verify(bytes.fromhex(sig), _payload(checkpoint))
    except (InvalidSignature, ValueError):
        return "its signature does not match its contents"
    return None
