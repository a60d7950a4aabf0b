"""What uninstalling leaves behind, and removing it when the user asks (``--purge``).

Uninstalling the service never touches the user's data. What stays: the config, the
data directory (the vault with the conversations, the egress audit log), the models,
the logs, and the keychain items that hold the vault's key and the audit log's keys.
Their names are not guessed: they are read from this home's own files (the vault's
header and key journal, the egress's ``secrets.json``), so a purge removes this
home's items and no other's.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from keyring.backend import KeyringBackend

from daemon.egress.service import API_KEY, LOG_KEY, SIGNING_KEY
from daemon.paths import Paths
from daemon.vault import vault_path
from daemon.vault.keys import SERVICE as KEYCHAIN_SERVICE

CHECKPOINT = "audit-checkpoint"  # SecretCheckpointStore's item (daemon/egress/store.py)
EGRESS_SECRETS = (SIGNING_KEY, LOG_KEY, CHECKPOINT, API_KEY)


@dataclass
class Leftovers:
    dirs: list[tuple[str, Path]]  # (what it holds, where), existing ones only
    keychain: list[str] = field(default_factory=list)  # accounts under KEYCHAIN_SERVICE
    unreadable: list[str] = field(default_factory=list)  # where item names could not be read
    keychain_reachable: bool = True  # False: ``keychain`` lists what may exist, unchecked


def leftovers(paths: Paths) -> Leftovers:
    labels = [
        ("config", paths.config),
        ("data: the vault (your conversations) and the audit log", paths.data),
        ("models", paths.models),
        ("logs", paths.logs),
        ("runtime (socket, lock)", paths.run),
    ]
    if paths.models.is_relative_to(paths.data):
        labels[1] = (labels[1][0] + ", and the models below", paths.data)
    found = Leftovers([(label, path) for label, path in labels if path.is_dir()])
    _vault_items(paths, found)
    _egress_items(paths, found)
    backend = _keychain() if found.keychain else None
    if backend is None:
        found.keychain_reachable = not found.keychain
    else:
        found.keychain = [a for a in found.keychain if _exists(backend, a)]
    return found


def _keychain() -> KeyringBackend | None:
    import keyring

    from daemon.errors import VaultLocked
    from daemon.vault.keys import usable_backend

    try:
        return usable_backend(keyring.get_keyring())
    except VaultLocked:
        return None


def _exists(backend: KeyringBackend, account: str) -> bool:
    try:
        return backend.get_password(KEYCHAIN_SERVICE, account) is not None
    except Exception:  # a locked or broken keychain: count it, the delete will say
        return True


def _vault_items(paths: Paths, found: Leftovers) -> None:
    db = vault_path(paths)
    if not db.is_file():
        return
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            rows = conn.execute("SELECT kek_kind, kek_id FROM header").fetchall()
            rows += conn.execute("SELECT kind, kek_id FROM kek_journal").fetchall()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        found.unreadable.append(f"{db} ({exc})")
        return
    for kind, kek_id in rows:
        account = f"vault-kek-{kek_id}"  # daemon/vault/keys.py's _account()
        if kind == "keychain" and account not in found.keychain:
            found.keychain.append(account)


def _egress_items(paths: Paths, found: Leftovers) -> None:
    record = paths.data / "egress" / "secrets.json"
    try:
        choice = json.loads(record.read_bytes())
    except FileNotFoundError:
        return
    except ValueError as exc:
        found.unreadable.append(f"{record} ({exc})")
        return
    if choice.get("kind") == "keychain":
        found.keychain += [f"egress-{choice['id']}-{name}" for name in EGRESS_SECRETS]


def size(path: Path) -> int:
    total = 0
    for item in path.rglob("*"):
        try:
            if item.is_file() and not item.is_symlink():
                total += item.stat().st_size
        except OSError:
            pass
    return total


def delete_keychain_items(accounts: list[str]) -> list[str]:
    """Delete the items; the accounts that could not be deleted (keychain unreachable)."""
    if not accounts:
        return []
    from keyring.errors import PasswordDeleteError

    backend = _keychain()
    if backend is None:
        return accounts
    left = []
    for account in accounts:
        try:
            backend.delete_password(KEYCHAIN_SERVICE, account)
        except PasswordDeleteError:
            pass  # already gone
        except Exception:  # D-Bus or OS errors: the item stays, and we say so
            left.append(account)
    return left


def delete_dirs(found: Leftovers) -> list[Path]:
    """Delete the directories; those still there afterwards (permissions, a busy mount)."""
    for _, path in found.dirs:
        shutil.rmtree(path, ignore_errors=True)
    return [path for _, path in found.dirs if path.exists()]
