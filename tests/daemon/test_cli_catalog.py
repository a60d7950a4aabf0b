"""`hearth models catalog` and the first-run hint, as a user sees them."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import time
from pathlib import Path

from daemon import catalog
from daemon.cli.hint import MARKER
from tests.conftest import Daemon

ROOT = Path(__file__).resolve().parents[2]


def hearth(daemon: Daemon, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "daemon", *args],
        env=daemon.env, capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip


def on_a_terminal(daemon: Daemon, *args: str) -> tuple[int, str]:
    """Run `hearth ARGS` with stderr on a pseudo-terminal, as in a person's shell."""
    main, side = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "daemon", *args],
        env=daemon.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=side,
        cwd=ROOT,
    )  # fmt: skip
    os.close(side)
    seen = b""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            chunk = os.read(main, 4096)
        except OSError:  # the process closed its end
            break
        if not chunk:
            break
        seen += chunk
    os.close(main)
    return proc.wait(30), seen.decode(errors="replace")


def test_the_catalog_shows_a_recommendation_for_this_machine(fresh_daemon: Daemon) -> None:
    expected = catalog.recommend(catalog.load(), catalog.this_machine())
    assert expected is not None
    out = hearth(fresh_daemon, "models", "catalog")
    assert out.returncode == 0, out.stderr
    assert any(line.startswith(f"{expected.name}* ") for line in out.stdout.splitlines())
    assert f"* Recommended here: {expected.name}" in out.stdout
    assert f"Get it: hearth models pull {expected.name}" in out.stdout
    assert "only network call" in out.stdout and expected.license in out.stdout
    listed = json.loads(hearth(fresh_daemon, "models", "catalog", "--json").stdout)
    assert listed["recommended"] == expected.name and "RAM" in listed["reason"]
    assert len(listed["models"]) == len(catalog.load())
    assert listed["machine"]["format"] == "gguf"  # this is not Apple Silicon
    assert all(m["download"]["format"] == "gguf" and m["installed"] == [] for m in listed["models"])


def test_the_first_rewrite_on_a_terminal_hints_once_at_the_recommended_model(
    fresh_daemon: Daemon,
) -> None:
    best = catalog.recommend(catalog.load(), catalog.this_machine())
    assert best is not None
    args = ("rewrite", "-p", "proofread", "--max-tokens", "2", "i has a cat")
    piped = hearth(fresh_daemon, *args)
    assert piped.returncode == 0 and "tip:" not in piped.stderr  # a script gets no chatter
    assert not (fresh_daemon.paths.data / MARKER).exists()
    code, first = on_a_terminal(fresh_daemon, *args)
    assert code == 0
    (line,) = [line for line in first.splitlines() if "tip:" in line]
    assert f"hearth models pull {best.name}" in line and best.license in line
    assert "MB" in line or "GB" in line
    assert "only download Hearth makes" in line and "(shown once)" in line
    code, second = on_a_terminal(fresh_daemon, "chat", "--max-tokens", "2", "--no-store", "Hi")
    assert code == 0 and "tip:" not in second
