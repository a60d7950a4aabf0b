"""Helpers for the daemon-level vault tests: the CLI, short chats, the vault file's rows.

The daemons these tests start use the session's gnome-keyring (tests/conftest.py,
``keychain_session``) unless a test sets PYTHON_KEYRING_BACKEND to the fail backend.
"""

from __future__ import annotations

import base64
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import keyring

from daemon.client import Client
from daemon.paths import Paths
from daemon.vault import vault_path

NO_KEYCHAIN = "keyring.backends.fail.Keyring"
SHORT = {"temperature": 0, "max_tokens": 2}


def hearth(home: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run the `hearth` CLI against ``home`` (it starts a daemon there when none runs)."""
    return subprocess.run(
        [sys.executable, "-m", "daemon", *args],
        env={**os.environ, "HEARTH_HOME": str(home)},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def say(client: Client, text: str, **params: Any) -> dict[str, Any]:
    """One short chat turn (2 tokens, greedy)."""
    result: dict[str, Any] = client.call(
        "chat", {"messages": [{"role": "user", "content": text}], "options": SHORT, **params}
    )
    return result


def db(home: Path) -> Path:
    return vault_path(Paths.from_env({"HEARTH_HOME": str(home)}))


def rows(home: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """Rows of the vault file, read beside the daemon (WAL readers do not block it)."""
    conn = sqlite3.connect(db(home), timeout=10)
    try:
        return [tuple(r) for r in conn.execute(sql, args).fetchall()]
    finally:
        conn.close()


def kek_id(home: Path) -> str:
    return str(rows(home, "SELECT kek_id FROM header")[0][0])


def keychain_kek(kek: str) -> bytes | None:
    """The KEK the session's Secret Service holds for ``kek`` (None when there is none)."""
    stored = keyring.get_password("hearth", f"vault-kek-{kek}")
    return None if stored is None else base64.b64decode(stored)


def encodings(text: str) -> list[bytes]:
    """``text`` as it could appear in a file: UTF-8, UTF-16 LE and BE."""
    return [text.encode(), text.encode("utf-16-le"), text.encode("utf-16-be")]


def files_containing(root: Path, needles: list[bytes]) -> list[str]:
    """Files under ``root`` that contain any of ``needles`` (sockets and the like skipped)."""
    found = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            found += [f"{path.relative_to(root)}" for n in needles if n in data]
    return found
