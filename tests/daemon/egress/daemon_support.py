"""Running the real daemon for the egress tests: under a wrapper (strace, a D-Bus session
with a keyring), with the test hooks on, and the `hearth` CLI against it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daemon.client import Client
from daemon.errors import DaemonUnavailable
from daemon.paths import Paths

# No test may touch the developer's real keychain; the keychain test brings its own.
ENV = {"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring", "HEARTH_TEST_HOOKS": "1"}
REPO_ROOT = Path(__file__).resolve().parents[3]


def env_for(home: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, **ENV, "HEARTH_HOME": str(home), "PYTHONPATH": str(REPO_ROOT), **extra}


@dataclass
class Running:
    """A daemon started by :func:`launch`; ``pid`` is the daemon itself, ``proc`` may be
    the wrapper around it."""

    home: Path
    proc: subprocess.Popen[bytes]
    pid: int

    @property
    def paths(self) -> Paths:
        return Paths.from_env({"HEARTH_HOME": str(self.home)})

    def client(self) -> Client:
        return Client.connect(self.paths.socket, "test")

    def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        with self.client() as c:
            return c.call(method, params)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def launch(
    home: Path,
    prefix: Sequence[str] = (),
    env: dict[str, str] | None = None,
    timeout: float = 60,
) -> Running:
    paths = Paths.from_env({"HEARTH_HOME": str(home)})
    with open(home / "daemon.out", "ab") as out:
        proc = subprocess.Popen(
            [*prefix, sys.executable, "-m", "daemon", "daemon"],
            env=env or env_for(home),
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"the daemon exited with {proc.returncode}: {(home / 'daemon.out').read_text()}"
            )
        try:
            with Client.connect(paths.socket, "test") as c:
                return Running(home, proc, int(c.call("status")["pid"]))
        except DaemonUnavailable:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the daemon did not start")


def hearth(
    home: Path, *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The `hearth` CLI, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "daemon", *args],
        env=env or env_for(home),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=180,
        cwd=REPO_ROOT,
    )
