"""Helpers for the vault tests: real vault files, real processes."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from daemon.vault import PassphraseKeySource, Vault

REPO = Path(__file__).resolve().parents[3]
PASSPHRASE = "correct horse battery staple"
FAST_SCRYPT = 2**10  # real scrypt, cheap parameters: opening a test vault takes ~4 ms


def passphrase(secret: str = PASSPHRASE) -> PassphraseKeySource:
    return PassphraseKeySource(secret, n=FAST_SCRYPT)


def files_under(root: Path) -> dict[str, bytes]:
    """Every file below ``root`` (the db, -wal, -shm, anything else), by relative name."""
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def snapshot(v: Vault) -> dict[str, Any]:
    """Everything a user could read from the vault, for before/after comparisons."""
    return {
        c["id"]: {k: val for k, val in v.get_conversation(c["id"]).items() if k != "updated"}
        for c in v.list_conversations()
    }


class Torture:
    """Drives ``python -m daemon.vault.torture``: forks job children the tests SIGKILL."""

    def __init__(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "daemon.vault.torture"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=REPO,
            env=env,
        )
        self._lines: queue.Queue[str] = queue.Queue()
        self._seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self._lines.put(raw.decode().rstrip("\n"))

    def start(self, **job: Any) -> int:
        """Start a job child; returns its pid."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(job).encode() + b"\n")
        self.proc.stdin.flush()
        self._seen = []
        line = self.until("pid ")  # the child may have written first: keep its lines
        self._seen.pop()
        return int(line.split()[1])

    def until(self, prefix: str) -> str:
        """Wait for the next line starting with ``prefix`` (earlier lines are kept)."""
        while True:
            line = self._lines.get(timeout=30)
            self._seen.append(line)
            if line.startswith(prefix):
                return line

    def finish(self, pid: int) -> tuple[int, list[str]]:
        """Wait for the child to end: its wait status and every line it wrote."""
        line = self.until(f"exit {pid} ")
        return int(line.split()[2]), self._seen[:-1]

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)
