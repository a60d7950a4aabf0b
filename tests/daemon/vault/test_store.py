"""What the vault stores and gives back, across close and reopen."""

from __future__ import annotations

import stat
import threading
import time
from pathlib import Path

import pytest

from daemon.errors import NotFound, VaultLocked
from daemon.vault import Vault
from tests.daemon.vault.support import passphrase


def test_conversations_come_back_whole_and_in_order_after_reopening(db_path: Path) -> None:
    with Vault.create(db_path, passphrase()) as v:
        older = v.new_conversation("Recipes")
        newer = v.new_conversation()
        v.append_message(older, "user", "How long do I boil an egg?")
        v.append_message(older, "assistant", "Nine minutes for hard-boiled.")
        v.append_message(newer, "user", "héllo — 你好 🙂")
        v.set_title(newer, "Greetings")

    with Vault.open(db_path, passphrase()) as v:
        conv = v.get_conversation(older)
        assert conv["title"] == "Recipes"
        assert [(m["role"], m["content"]) for m in conv["messages"]] == [
            ("user", "How long do I boil an egg?"),
            ("assistant", "Nine minutes for hard-boiled."),
        ]
        assert conv["created"] <= conv["messages"][0]["time"] <= conv["updated"]
        listed = v.list_conversations()
        assert [(c["id"], c["title"], c["messages"]) for c in listed] == [
            (newer, "Greetings", 1),
            (older, "Recipes", 2),
        ]
        assert v.get_conversation(newer)["messages"][0]["content"] == "héllo — 你好 🙂"


def test_an_unknown_conversation_is_not_found_for_every_operation(vault: Vault) -> None:
    for call in (
        lambda: vault.get_conversation("nope"),
        lambda: vault.append_message("nope", "user", "x"),
        lambda: vault.delete_conversation("nope"),
        lambda: vault.set_title("nope", "x"),
    ):
        with pytest.raises(NotFound):
            call()


def test_settings_and_plugin_data_keep_any_json_value_across_reopen(db_path: Path) -> None:
    with Vault.create(db_path, passphrase()) as v:
        v.set_setting("model", "smollm2")
        v.set_setting("egress", {"allow": ["example.org"], "audit": True, "limit": 1.5})
        v.set_setting("model", "qwen3")  # overwrite
        v.plugin_put("notes", "list", [1, "two", None])
        v.plugin_put("other", "list", "not the same plugin")
        v.plugin_put("notes", "gone", 1)
        v.plugin_delete("notes", "gone")

    with Vault.open(db_path, passphrase()) as v:
        assert v.get_setting("model") == "qwen3"
        assert v.get_setting("egress") == {"allow": ["example.org"], "audit": True, "limit": 1.5}
        assert v.get_setting("missing", "fallback") == "fallback"
        assert v.plugin_get("notes", "list") == [1, "two", None]
        assert v.plugin_get("other", "list") == "not the same plugin"
        assert v.plugin_get("notes", "gone") is None


def test_export_then_import_gives_an_equal_conversation_under_a_new_id(vault: Vault) -> None:
    conv = vault.new_conversation("Trip")
    vault.append_message(conv, "user", "Pack list?")
    vault.append_message(conv, "assistant", "Passport, charger.")
    exported = vault.export(conv)
    assert exported["format"] == "hearth.conversation"

    (copy,) = vault.import_conversations([exported])

    assert copy != conv
    strip = lambda c: [(m["role"], m["content"], m["time"]) for m in c["messages"]]  # noqa: E731
    assert strip(vault.get_conversation(copy)) == strip(vault.get_conversation(conv))
    assert vault.get_conversation(copy)["title"] == "Trip"


def test_purge_older_than_deletes_only_conversations_not_updated_since(vault: Vault) -> None:
    now = time.time()
    old, fresh = vault.import_conversations(
        [
            {"title": "old", "created": now - 40 * 86400, "updated": now - 31 * 86400},
            {"title": "fresh", "created": now - 40 * 86400, "updated": now - 29 * 86400},
        ]
    )
    recent = vault.new_conversation("today")

    assert vault.purge_older_than(30) == 1

    assert {c["id"] for c in vault.list_conversations()} == {fresh, recent}
    with pytest.raises(NotFound):
        vault.get_conversation(old)
    assert vault.purge_older_than(30) == 0


def test_message_ids_are_never_reused_after_a_conversation_is_deleted(vault: Vault) -> None:
    doomed = vault.new_conversation()
    last = max(vault.append_message(doomed, "user", str(i)) for i in range(3))
    vault.delete_conversation(doomed)
    kept = vault.new_conversation()
    assert vault.append_message(kept, "user", "next") > last


def test_the_vault_files_are_private_to_the_user(vault: Vault, db_path: Path) -> None:
    vault.append_message(vault.new_conversation(), "user", "x")
    for path in db_path.parent.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_create_refuses_an_existing_vault_and_open_refuses_a_missing_one(
    vault: Vault, db_path: Path, tmp_path: Path
) -> None:
    assert Vault.is_initialized(db_path)
    assert Vault.protection(db_path) == "passphrase"
    with pytest.raises(FileExistsError):
        Vault.create(db_path, passphrase())
    assert not Vault.is_initialized(tmp_path / "none.db")
    with pytest.raises(NotFound):
        Vault.open(tmp_path / "none.db", passphrase())


def test_a_closed_vault_refuses_work_with_vault_locked(vault: Vault) -> None:
    vault.close()
    with pytest.raises(VaultLocked):
        vault.list_conversations()


def test_verify_counts_every_record_it_decrypted(vault: Vault) -> None:
    conv = vault.new_conversation("t")
    vault.append_message(conv, "user", "a")
    vault.append_message(conv, "assistant", "b")
    vault.set_setting("s", 1)
    assert vault.verify() == {"conversations": 1, "messages": 2, "records": 1}


def test_appends_from_many_threads_are_all_stored_with_distinct_ids(vault: Vault) -> None:
    conv = vault.new_conversation()
    ids: list[int] = []

    def worker(n: int) -> None:
        for i in range(25):
            ids.append(vault.append_message(conv, "user", f"{n}-{i}"))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    stored = vault.get_conversation(conv)["messages"]
    assert sorted(ids) == [m["id"] for m in stored]
    assert len(set(ids)) == len({m["content"] for m in stored}) == 100


def test_add_turn_stores_a_whole_turn_or_nothing(vault: Vault) -> None:
    conv, ids = vault.add_turn(None, [("user", "hi"), ("assistant", "hello")], title="Greeting")
    assert len(ids) == 2
    got = vault.get_conversation(conv)
    assert got["title"] == "Greeting"
    assert [(m["id"], m["role"], m["content"]) for m in got["messages"]] == [
        (ids[0], "user", "hi"),
        (ids[1], "assistant", "hello"),
    ]
    _, more = vault.add_turn(conv, [("user", "again")])
    assert [m["id"] for m in vault.get_conversation(conv)["messages"]] == [*ids, *more]

    with pytest.raises(NotFound):
        vault.add_turn("no-such-id", [("user", "lost")])
    assert len(vault.list_conversations()) == 1
    assert vault.search("lost") == []
