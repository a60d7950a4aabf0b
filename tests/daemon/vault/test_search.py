"""Search decrypts and scans; it finds what it should and stays fast at 10,000 conversations."""

from __future__ import annotations

import random
import time
from pathlib import Path

from daemon.vault import Vault
from tests.daemon.vault.support import passphrase

WORDS = ["the", "garden", "tomato", "recipe", "weather", "train", "ticket", "invoice", "meeting"]


def test_search_is_case_insensitive_covers_titles_and_puts_recent_conversations_first(
    vault: Vault,
) -> None:
    old = vault.new_conversation("Zürich trip")
    hotel = vault.append_message(old, "user", "Book a hotel in ZÜRICH please")
    new = vault.new_conversation("Budget")
    costly = vault.append_message(new, "assistant", "zürich is expensive")
    vault.append_message(new, "user", "nothing to see here")

    hits = vault.search("zürich")

    assert [(h["conversation"], h["message"], h["role"]) for h in hits] == [
        (new, costly, "assistant"),
        (old, None, None),  # the title
        (old, hotel, "user"),
    ]
    assert hits[2]["snippet"] == "Book a hotel in ZÜRICH please"
    assert len(vault.search("zürich", limit=2)) == 2
    assert vault.search("absent") == []
    assert vault.search("") == []


def test_search_over_10000_conversations_finds_the_one_match_within_a_few_seconds(
    db_path: Path,
) -> None:
    rng = random.Random(7)

    def message(i: int) -> dict[str, str]:
        text = " ".join(rng.choice(WORDS) for _ in range(40))
        return {"role": "user" if i % 2 else "assistant", "content": text}

    items = [
        {"title": f"chat {n}", "messages": [message(i) for i in range(4)]} for n in range(10_000)
    ]
    items[7321]["messages"][2]["content"] += " the needle-in-haystack phrase"
    with Vault.create(db_path, passphrase()) as v:
        ids = v.import_conversations(items)

    with Vault.open(db_path, passphrase()) as v:  # cold: no data key unwrapped yet
        started = time.perf_counter()
        hits = v.search("NEEDLE-in-haystack")
        cold = time.perf_counter() - started
        started = time.perf_counter()
        v.search("needle-in-haystack")
        warm = time.perf_counter() - started
        started = time.perf_counter()
        v.delete_conversation(ids[0])  # re-wraps 9,999 data keys under a new master key
        delete = time.perf_counter() - started

    print(
        f"search over 10,000 conversations / 40,000 messages: cold {cold:.3f} s, "
        f"warm {warm:.3f} s; delete (re-wrap 9,999 keys) {delete:.3f} s"
    )
    assert [(h["conversation"], h["message"]) for h in hits] == [(ids[7321], 7321 * 4 + 3)]
    assert cold < 3.0 and warm < 3.0  # measured 0.3–0.6 s; generous for loaded CI machines
