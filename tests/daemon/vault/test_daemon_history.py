"""Conversations through the running daemon: replay, store:false, settings, retention, CLI."""

from __future__ import annotations

import json
import random
import re
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.errors import IntegrityError, InvalidParams, NotFound
from daemon.vault import PassphraseKeySource, Vault
from tests.conftest import Daemon, start_daemon
from tests.daemon.vault.running import db, hearth, rows, say


@pytest.fixture
def running(home: Path) -> Iterator[Daemon]:
    daemon = start_daemon(home)
    yield daemon
    daemon.stop()


def test_a_conversation_continues_across_a_daemon_restart(home: Path) -> None:
    first = start_daemon(home)
    with first.client() as c:
        one = say(c, "My name is Ada and I like tea.")
        other = say(c, "An unrelated chat.")
    first.stop()
    assert one["stored"] and one["conversation_id"] != other["conversation_id"]

    second = start_daemon(home)
    try:
        with second.client() as c:
            alone = say(c, "What is my name?", store=False)
            two = say(c, "What is my name?", conversation_id=one["conversation_id"])
            stored = c.call("conversations.get", {"id": one["conversation_id"]})
    finally:
        second.stop()
    assert two["conversation_id"] == one["conversation_id"]
    # The daemon replayed the first turn: the same question costs its tokens on top.
    assert two["tokens"]["prompt"] >= alone["tokens"]["prompt"] + 8
    assert [(m["role"], m["content"]) for m in stored["messages"]] == [
        ("user", "My name is Ada and I like tea."),
        ("assistant", one["text"]),
        ("user", "What is my name?"),
        ("assistant", two["text"]),
    ]
    assert stored["title"] == "My name is Ada and I like tea."


def test_store_false_and_keep_history_off_leave_no_conversation(running: Daemon) -> None:
    with running.client() as c:
        kept = say(c, "keep this one")
        before = c.call("conversations.list")["conversations"]

        gone = say(c, "leave no trace", store=False)
        assert gone["stored"] is False and gone["conversation_id"] is None
        # Replaying a stored conversation without storing the new turn:
        peek = say(c, "just asking", conversation_id=kept["conversation_id"], store=False)
        assert peek["stored"] is False

        c.call("settings.set", {"key": "keep_history", "value": False})
        off = say(c, "history is off")
        assert off["stored"] is False and off["conversation_id"] is None
        c.call("settings.set", {"key": "keep_history", "value": True})

        assert c.call("conversations.list")["conversations"] == before
        for text in ("leave no trace", "just asking", "history is off"):
            assert c.call("conversations.search", {"text": text})["results"] == []


def test_settings_are_validated_and_kept_in_the_vault_across_restarts(home: Path) -> None:
    daemon = start_daemon(home)
    with daemon.client() as c:
        assert c.call("settings.get") == {
            "settings": {"keep_history": True, "retention_days": None}
        }
        for key, value in [("keep_history", "yes"), ("retention_days", -1), ("colour", 1)]:
            with pytest.raises(InvalidParams):
                c.call("settings.set", {"key": key, "value": value})
        with pytest.raises(InvalidParams):
            c.call("settings.get", {"key": "colour"})
        c.call("settings.set", {"key": "retention_days", "value": 30})
    daemon.stop()
    daemon = start_daemon(home)
    try:
        with daemon.client() as c:
            assert c.call("settings.get", {"key": "retention_days"}) == {
                "key": "retention_days",
                "value": 30,
            }
    finally:
        daemon.stop()


def _backdate(home: Path, conv_id: str, days: float) -> None:
    """Move a conversation's last activity back (the time is stored in the clear)."""
    conn = sqlite3.connect(db(home), timeout=10)
    try:
        with conn:
            conn.execute(
                "UPDATE conversations SET updated = updated - ? WHERE id = ?",
                (days * 86400, conv_id),
            )
    finally:
        conn.close()


def test_retention_crypto_shreds_expired_conversations_at_once_and_at_start(home: Path) -> None:
    daemon = start_daemon(home)
    with daemon.client() as c:
        old = say(c, "an old chat")["conversation_id"]
        later = say(c, "a later chat")["conversation_id"]
        recent = say(c, "a recent chat")["conversation_id"]
        _backdate(home, old, 40)
        key_of_old = rows(home, "SELECT key_id FROM conversations WHERE id = ?", old)[0][0]

        assert c.call("settings.set", {"key": "retention_days", "value": 30})["purged"] == 1
        assert {x["id"] for x in c.call("conversations.list")["conversations"]} == {
            later,
            recent,
        }
        with pytest.raises(NotFound):
            c.call("conversations.get", {"id": old})
        assert rows(home, "SELECT 1 FROM data_keys WHERE key_id = ?", key_of_old) == []
    daemon.stop()

    _backdate(home, later, 31)
    daemon = start_daemon(home)  # the retention task sweeps at start
    try:
        with daemon.client() as c:
            deadline = time.monotonic() + 10
            while len(c.call("conversations.list")["conversations"]) > 1:
                assert time.monotonic() < deadline, "the start-up sweep did not run"
                time.sleep(0.05)
            assert [x["id"] for x in c.call("conversations.list")["conversations"]] == [recent]
    finally:
        daemon.stop()


def test_a_flipped_byte_in_a_stored_message_is_an_integrity_error_naming_it(home: Path) -> None:
    daemon = start_daemon(home)
    with daemon.client() as c:
        conv = say(c, "first message")["conversation_id"]
        say(c, "the record we damage", conversation_id=conv)
    daemon.stop()  # closed cleanly: the WAL is folded into the file
    (target, sealed), *_ = rows(
        home, "SELECT id, sealed FROM messages WHERE conv_id = ? ORDER BY id DESC", conv
    )
    path = db(home)
    pristine = path.read_bytes()
    offset = pristine.index(sealed)

    for i in (0, len(sealed) // 2, len(sealed) - 1):  # nonce, ciphertext, tag
        damaged = bytearray(pristine)
        damaged[offset + i] ^= 0x01
        path.write_bytes(damaged)
        daemon = start_daemon(home)
        try:
            with daemon.client() as c:
                with pytest.raises(IntegrityError) as failed:
                    c.call("conversations.get", {"id": conv})
                assert failed.value.data == {"table": "messages", "row": str(target)}
                assert f"messages#{target}" in failed.value.message
                with pytest.raises(IntegrityError):
                    c.call("conversations.search", {"text": "damage"})
                with pytest.raises(IntegrityError):  # never replayed as garbage either
                    say(c, "go on", conversation_id=conv)
                assert [x["id"] for x in c.call("conversations.list")["conversations"]] == [conv]
        finally:
            daemon.stop()
        path.write_bytes(pristine)


def test_the_cli_lists_shows_searches_exports_and_removes_conversations(home: Path) -> None:
    try:
        first = hearth(home, "chat", "--max-tokens", "2", "Plan a trip to Lisbon")
        assert first.returncode == 0, first.stderr
        found = re.search(r"\[conversation ([0-9a-f]+)\]", first.stderr)
        assert found, first.stderr
        conv = found.group(1)
        more = hearth(home, "chat", "--conversation", conv, "--max-tokens", "2", "And Porto?")
        assert more.returncode == 0, more.stderr
        assert "[conversation" not in more.stderr  # it continued, no new conversation
        quiet = hearth(home, "chat", "--no-store", "--max-tokens", "2", "Forget Madrid")
        assert quiet.returncode == 0 and "[conversation" not in quiet.stderr

        listing = hearth(home, "history", "list")
        assert listing.returncode == 0 and listing.stdout.count("\n") == 1
        assert conv in listing.stdout and "Plan a trip to Lisbon" in listing.stdout
        shown = hearth(home, "history", "show", conv)
        assert "Plan a trip to Lisbon" in shown.stdout and "And Porto?" in shown.stdout
        hits = hearth(home, "history", "search", "PORTO")
        assert hits.returncode == 0 and conv in hits.stdout and "And Porto?" in hits.stdout
        assert hearth(home, "history", "search", "madrid").stdout == ""
        exported = json.loads(hearth(home, "history", "export", conv).stdout)
        assert exported["format"] == "hearth.conversation" and exported["id"] == conv
        assert [m["role"] for m in exported["messages"]] == ["user", "assistant"] * 2

        removed = hearth(home, "history", "rm", conv)
        assert removed.returncode == 0, removed.stderr
        assert hearth(home, "history", "list").stdout == ""
        again = hearth(home, "history", "show", conv)
        assert again.returncode == 2 and "no conversation" in again.stderr
    finally:
        hearth(home, "down")


def test_search_over_10000_conversations_through_the_daemon_stays_fast(home: Path) -> None:
    rng = random.Random(7)
    words = ["garden", "tomato", "recipe", "weather", "train", "ticket", "invoice", "meeting"]

    def message(i: int) -> dict[str, str]:
        text = " ".join(rng.choice(words) for _ in range(40))
        return {"role": "user" if i % 2 else "assistant", "content": text}

    items = [
        {"title": f"chat {n}", "messages": [message(i) for i in range(4)]} for n in range(10_000)
    ]
    items[7321]["messages"][2]["content"] += " the needle-in-haystack phrase"
    with Vault.create(db(home), PassphraseKeySource("pw", n=2**10)) as v:
        needle = v.import_conversations(items)[7321]

    daemon = start_daemon(home)
    try:
        with daemon.client() as c:
            c.call("vault.unlock", {"passphrase": "pw"})
            started = time.perf_counter()
            cold = c.call("conversations.search", {"text": "NEEDLE-in-haystack"})["results"]
            cold_s = time.perf_counter() - started
            started = time.perf_counter()
            warm = c.call("conversations.search", {"text": "needle-in-haystack"})["results"]
            warm_s = time.perf_counter() - started
            started = time.perf_counter()
            many = c.call("conversations.search", {"text": "tomato", "limit": 10_000})["results"]
            many_s = time.perf_counter() - started
        started = time.perf_counter()
        cli = hearth(home, "history", "search", "needle-in-haystack")
        cli_s = time.perf_counter() - started
    finally:
        daemon.stop()
    print(
        f"search over 10,000 conversations via the daemon: cold {cold_s:.2f} s, "
        f"warm {warm_s:.2f} s, 10,000 hits {many_s:.2f} s, CLI {cli_s:.2f} s"
    )
    assert [(h["conversation"], h["role"]) for h in cold] == [(needle, "assistant")]
    assert warm == cold and len(many) == 10_000
    assert cli.returncode == 0 and needle in cli.stdout
    assert cold_s < 10 and warm_s < 5  # measured: 0.4 s and 0.25 s on a shared 2-core box


def test_an_interactive_cli_chat_keeps_one_conversation_and_sends_only_new_turns(
    home: Path,
) -> None:
    try:
        chat = hearth(home, "chat", "--max-tokens", "2", stdin="Hello there\nHow are you?\n")
        assert chat.returncode == 0, chat.stderr
        assert chat.stderr.count("[conversation") == 1
        (conv,) = json.loads(hearth(home, "history", "list", "--json").stdout)
        shown = json.loads(hearth(home, "history", "show", conv["id"], "--json").stdout)
    finally:
        hearth(home, "down")
    # Each user message stored once: the second turn was not re-sent with the first.
    assert [(m["role"], m["content"]) for m in shown["messages"] if m["role"] == "user"] == [
        ("user", "Hello there"),
        ("user", "How are you?"),
    ]
    assert len(shown["messages"]) == 4
