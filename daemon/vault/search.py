"""Full-text search over sealed conversations: decrypt and scan, nothing indexed in the clear.

A plaintext (or even keyed) word index would leak which conversations share words, so
search decrypts every title and message and matches in memory. One pass over 10,000
conversations (40,000 messages) takes about 0.3–0.6 s (tests/daemon/vault/test_search.py).
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from daemon.vault.crypto import record_failed
from daemon.vault.keyset import KeySet

SNIPPET = 60  # characters of context either side of a match


def search_records(
    conn: sqlite3.Connection, keys: KeySet, text: str, limit: int
) -> list[dict[str, Any]]:
    """Matches, most recently updated conversation first, then in message order."""
    needle = text.casefold()
    if not needle or limit <= 0:
        return []
    conversations: dict[str, tuple[str, float, str]] = {}
    hits: list[tuple[float, int, dict[str, Any]]] = []
    rows = conn.execute("SELECT id, key_id, updated, sealed FROM conversations")
    for conv_id, key_id, updated, sealed in rows:
        title = str(keys.sealer(key_id).open_json("conversations", conv_id, sealed)["title"])
        conversations[conv_id] = (key_id, updated, title)
        if needle in title.casefold():
            hits.append((-updated, 0, _hit(conv_id, title, None, None, title, needle)))
    # A needle free of characters JSON escapes can only be in a message if it is in the
    # message's JSON text: test that first and parse only the candidates.
    prefilter = not any(c in needle for c in '"\\') and all(c >= " " for c in needle)
    for msg_id, conv_id, sealed in conn.execute("SELECT id, conv_id, sealed FROM messages"):
        if conv_id not in conversations:  # a message row moved out of its conversation
            raise record_failed("messages", msg_id)
        key_id, updated, title = conversations[conv_id]
        raw = keys.sealer(key_id).open("messages", msg_id, sealed).decode()
        if prefilter and needle not in raw.casefold():
            continue
        message = json.loads(raw)
        content = str(message["content"])
        if needle in content.casefold():
            hit = _hit(conv_id, title, msg_id, message["role"], content, needle)
            hits.append((-updated, msg_id, hit))
    hits.sort(key=lambda h: (h[0], h[1]))
    return [hit for _, _, hit in hits[:limit]]


def _hit(
    conv_id: str, title: str, msg_id: int | None, role: str | None, text: str, needle: str
) -> dict[str, Any]:
    folded = text.casefold()
    # casefold can change the length (ß → ss); then fall back to the start of the text.
    at = folded.find(needle) if len(folded) == len(text) else 0
    start, end = max(0, at - SNIPPET), at + len(needle) + SNIPPET
    snippet = ("…" if start else "") + text[start:end] + ("…" if end < len(text) else "")
    return {
        "conversation": conv_id,
        "title": title,
        "message": msg_id,
        "role": role,
        "snippet": snippet,
    }
