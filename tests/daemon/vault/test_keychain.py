"""The real Secret Service (gnome-keyring on a private D-Bus session) holds the KEK.

Each test runs Python scripts inside ``dbus-run-session`` with a fresh, unlocked
gnome-keyring and its own HOME, so nothing touches the developer's real keyring.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.daemon.vault.support import REPO

PRELUDE = """
import base64, json, shutil, sqlite3, sys
from pathlib import Path
import keyring
from daemon.errors import HearthError
from daemon.vault import KeychainKeySource, PassphraseKeySource, Vault
db = Path(sys.argv[1])

def kek_item(path):
    kek_id = sqlite3.connect(path).execute("SELECT kek_id FROM header").fetchone()[0]
    return keyring.get_password("hearth", f"vault-kek-{kek_id}")

def report(**facts):
    print(json.dumps(facts))
"""


def _in_secret_service(tmp_path: Path, *scripts: str) -> list[dict[str, Any]]:
    """Run each script (in order, one process each) in one keyring session; their reports."""
    for tool in ("dbus-run-session", "gnome-keyring-daemon"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: run `bash tests/system-deps.sh` first")
    home = tmp_path / "home"
    home.mkdir()
    commands = []
    for i, script in enumerate(scripts):
        path = tmp_path / f"script{i}.py"
        path.write_text(PRELUDE + textwrap.dedent(script))
        commands.append(f"{shlex.quote(sys.executable)} {path} {tmp_path / 'vault.db'}")
    shell = (
        "echo -n test-login | gnome-keyring-daemon --unlock --components=secrets >/dev/null && "
        + " && ".join(commands)
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DBUS", "PYTHON_KEYRING"))}
    env.update(HOME=str(home), XDG_RUNTIME_DIR=str(home), PYTHONPATH=str(REPO))
    for var in ("XDG_DATA_HOME", "XDG_CONFIG_HOME"):
        env.pop(var, None)
    done = subprocess.run(
        ["dbus-run-session", "--", "sh", "-c", shell],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def test_the_kek_is_stored_in_and_read_back_from_the_real_secret_service(tmp_path: Path) -> None:
    created, reopened = _in_secret_service(
        tmp_path,
        """
        source = KeychainKeySource()
        with Vault.create(db, source) as v:
            conv = v.new_conversation("kept by the keychain")
            v.append_message(conv, "user", "hello from a real keyring")
        kek = base64.b64decode(kek_item(db))
        in_file = kek in db.read_bytes()
        report(backend=repr(source), conv=conv, kek_bytes=len(kek), kek_in_file=in_file)
        """,
        """
        # A new process, as the daemon after a restart: only the Secret Service has the KEK.
        with Vault.open(db, KeychainKeySource()) as v:
            conv = v.list_conversations()[0]["id"]
            content = v.get_conversation(conv)["messages"][0]["content"]
        report(protection=Vault.protection(db), content=content)
        """,
    )
    assert created["backend"] == "KeychainKeySource(keyring.backends.SecretService.Keyring)"
    assert created["kek_bytes"] == 32
    assert created["kek_in_file"] is False
    assert reopened == {"protection": "keychain", "content": "hello from a real keyring"}


def test_with_a_keychain_a_copy_taken_before_deletion_cannot_be_opened_afterwards(
    tmp_path: Path,
) -> None:
    (facts,) = _in_secret_service(
        tmp_path,
        """
        with Vault.create(db, KeychainKeySource()) as v:
            doomed, kept = v.new_conversation("doomed"), v.new_conversation("kept")
            v.append_message(doomed, "user", "shred me")
            v.append_message(kept, "user", "keep me")
        backup = db.with_name("backup.db")
        shutil.copyfile(db, backup)  # closed: the whole vault is in the file

        before = Vault.open(backup, KeychainKeySource())  # the copy opens before deletion
        before.close()
        with Vault.open(db, KeychainKeySource()) as v:
            v.delete_conversation(doomed)
            kept_content = v.get_conversation(kept)["messages"][0]["content"]

        try:
            Vault.open(backup, KeychainKeySource())
            copy_after = "opened"
        except HearthError as exc:
            copy_after = exc.data.get("reason", exc.kind)

        # Even with the live vault and its keychain item: graft the live header on the copy.
        old, live = sqlite3.connect(backup), sqlite3.connect(db)
        header = live.execute("SELECT * FROM header").fetchone()
        old.execute("DELETE FROM header")
        old.execute("INSERT INTO header VALUES (?, ?, ?, ?, ?, ?, ?, ?)", header)
        old.commit(); old.close(); live.close()
        with Vault.open(backup, KeychainKeySource()) as grafted:
            try:
                grafted.get_conversation(doomed)
                grafted_result = "readable"
            except HearthError as exc:
                grafted_result = exc.kind
        report(kept=kept_content, copy_after=copy_after, grafted=grafted_result)
        """,
    )
    assert facts == {
        "kept": "keep me",
        "copy_after": "keychain_key_missing",  # its KEK was deleted from the keychain
        "grafted": "integrity_error",  # its conversation key was wrapped by a retired master key
    }


def test_rotating_from_the_keychain_to_a_passphrase_removes_the_keychain_item(
    tmp_path: Path,
) -> None:
    (facts,) = _in_secret_service(
        tmp_path,
        """
        with Vault.create(db, KeychainKeySource()) as v:
            v.set_setting("s", "v")
            before = kek_item(db) is not None
            kek_id = sqlite3.connect(db).execute("SELECT kek_id FROM header").fetchone()[0]
            v.rotate(PassphraseKeySource("now a passphrase", n=2**10), reencrypt=True)
        left = keyring.get_password("hearth", f"vault-kek-{kek_id}")
        try:
            Vault.open(db, KeychainKeySource())
            by_keychain = "opened"
        except HearthError as exc:
            by_keychain = exc.data.get("reason", exc.kind)
        with Vault.open(db, PassphraseKeySource("now a passphrase")) as v:
            setting = v.get_setting("s")
        report(before=before, left=left, by_keychain=by_keychain, setting=setting)
        """,
    )
    assert facts == {
        "before": True,
        "left": None,
        "by_keychain": "wrong_key_source",
        "setting": "v",
    }


def test_a_keychain_rotation_killed_at_every_step_leaves_one_keychain_item_per_vault(
    tmp_path: Path,
) -> None:
    (facts,) = _in_secret_service(
        tmp_path,
        """
        import itertools
        import secretstorage
        from tests.daemon.vault.support import Torture

        def hearth_items():
            bus = secretstorage.dbus_init()
            try:
                collection = secretstorage.get_default_collection(bus)
                return len(list(collection.search_items({"service": "hearth"})))
            finally:
                bus.close()

        def kek_id(path):
            return sqlite3.connect(path).execute("SELECT kek_id FROM header").fetchone()[0]

        torture, outcomes = Torture(), []
        for k in itertools.count():
            path = db.with_name(f"kill-at-{k}.db")
            with Vault.create(path, KeychainKeySource()) as v:
                conv = v.new_conversation("c")
                v.append_message(conv, "user", f"message {k}")
                expected = v.get_conversation(conv)
            items, old_kek = hearth_items(), kek_id(path)
            pid = torture.start(op="rotate", db=str(path), key={"keychain": True},
                                new_key={"keychain": True}, reencrypt=True, kill_at=k)
            status, lines = torture.finish(pid)
            with Vault.open(path, KeychainKeySource()) as v:  # cleans the journal
                intact = v.get_conversation(conv) == expected
                v.verify()
            switched, extra = kek_id(path) != old_kek, hearth_items() - items
            outcomes.append(
                {"last": lines[-1], "intact": intact, "switched": switched, "extra_items": extra}
            )
            if "done" in lines:
                break
        torture.close()
        report(outcomes=outcomes)
        """,
    )
    outcomes = facts["outcomes"]
    assert [o["last"] for o in outcomes] == [
        "step journal",
        "step kek",
        "step rekeyed",  # the conversation's key
        "step rekeyed",  # the settings key
        "step header",
        "step commit",
        "step discard",
        "done",
    ]
    assert all(o["intact"] for o in outcomes)
    assert all(o["extra_items"] == 0 for o in outcomes)  # orphaned KEKs were removed
    assert [o["switched"] for o in outcomes] == [False] * 5 + [True] * 3
