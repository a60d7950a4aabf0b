"""``python -m daemon.vault.torture``: runs vault jobs in children that tests kill with SIGKILL.

A fresh interpreter per job costs ~150 ms of imports, too slow for hundreds of kills,
so this process imports once and forks one child per job. Jobs are JSON lines on
stdin (a passphrase travels there, never in argv or the environment)::

    {"op": "append", "db": PATH, "key": KEY, "conv": ID}
        append messages until killed; "ack ID CONTENT" after each append returned
    {"op": "rotate", "db": PATH, "key": KEY, "new_key": KEY, "reencrypt": B, "kill_at": K}
    {"op": "delete", "db": PATH, "key": KEY, "conv": ID, "kill_at": K}
        run the operation, SIGKILLing itself at its K-th step ("step NAME" lines);
        "done" when it finished first

    KEY is {"passphrase": P, "n": SCRYPT_N} or {"keychain": true}.

This process writes "pid PID" when a child starts and "exit PID STATUS" after it ended,
so every line the child wrote comes before its "exit" line.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from daemon.errors import HearthError
from daemon.vault.keys import (
    SCRYPT_N,
    KeychainKeySource,
    KeySource,
    PassphraseKeySource,
)
from daemon.vault.store import Vault


def main() -> None:
    for line in sys.stdin:
        job = json.loads(line)
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            _child(job)
        _say(f"pid {pid}")
        _, status = os.waitpid(pid, 0)
        _say(f"exit {pid} {status}")


def _child(job: dict[str, Any]) -> None:
    code = 0
    try:
        _run(job)
        _say("done")
    except HearthError as exc:
        _say(f"error {exc.kind}")
        code = 1
    except BaseException as exc:
        _say(f"crash {type(exc).__name__}: {exc}")
        code = 2
    os._exit(code)


def _run(job: dict[str, Any]) -> None:
    steps = 0

    def step(name: str) -> None:
        nonlocal steps
        _say(f"step {name}")
        if steps == job.get("kill_at"):
            os.kill(os.getpid(), signal.SIGKILL)
        steps += 1

    with Vault.open(Path(job["db"]), _source(job["key"]), on_step=step) as v:
        if job["op"] == "append":
            for i in range(sys.maxsize):
                content = f"{os.getpid()}-{i}"
                _say(f"ack {v.append_message(job['conv'], 'user', content)} {content}")
        elif job["op"] == "rotate":
            v.rotate(_source(job["new_key"]), reencrypt=job["reencrypt"])
        elif job["op"] == "delete":
            v.delete_conversation(job["conv"])


def _source(spec: dict[str, Any]) -> KeySource:
    if spec.get("keychain"):
        return KeychainKeySource()
    return PassphraseKeySource(spec["passphrase"], n=spec.get("n", SCRYPT_N))


def _say(line: str) -> None:
    """One write(2) per line: atomic on a pipe, and never lost in a buffer at SIGKILL."""
    os.write(1, (line + "\n").encode())


if __name__ == "__main__":
    main()
