"""The synchronous client: errors about the whole connection reach the caller (issue 20, 9)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from daemon.errors import LineTooLong
from tests.conftest import Daemon

TOO_LONG = "a" * ((1 << 20) + 4096)  # over the default max_line_bytes, 1 MiB


def test_a_request_over_the_line_limit_raises_line_too_long(daemon: Daemon) -> None:
    with daemon.client() as c, pytest.raises(LineTooLong) as err:
        c.call("rewrite", {"text": TOO_LONG, "preset": "proofread"})
    assert "longer than" in err.value.message


def test_cli_rewrite_of_more_than_a_mib_says_the_text_is_too_long(home: Path) -> None:
    def hearth(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "HEARTH_HOME": str(home)}
        return subprocess.run([sys.executable, "-m", "daemon", *args], env=env, input=stdin,
                              capture_output=True, text=True, timeout=300)  # fmt: skip

    try:
        out = hearth("rewrite", "-p", "proofread", stdin=TOO_LONG)
        assert out.returncode == 2
        assert out.stderr.startswith("hearth: request line longer than"), out.stderr
        assert "Send less text" in out.stderr
    finally:
        hearth("down")
