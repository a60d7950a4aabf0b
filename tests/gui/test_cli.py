"""`hearth tray` is a CLI command like the others; only it loads Qt, never the daemon."""

from __future__ import annotations

import subprocess
import sys

NO_QT = """
import sys
from daemon.cli import build_parser
import daemon.main, daemon.methods
build_parser().parse_args(["tray"])
assert not [m for m in sys.modules if m.startswith(("PySide6", "shiboken6", "gui"))], "Qt loaded"
print("clean")
"""


def test_the_daemon_and_the_cli_never_import_qt() -> None:
    done = subprocess.run([sys.executable, "-c", NO_QT], capture_output=True, text=True)
    assert done.returncode == 0 and "clean" in done.stdout, done.stderr


def test_hearth_tray_help_says_what_it_is() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "daemon", "tray", "--help"], capture_output=True, text=True
    )
    assert done.returncode == 0
    assert "tray icon" in done.stdout and "--no-start" in done.stdout
