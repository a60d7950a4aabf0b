"""What the GUI tests share: Qt offscreen, a connected DaemonConnection, screenshots.

The windows talk to the real daemon (tests/conftest.py) over its real socket; Qt runs
offscreen here, and under Xvfb with a real tray host in test_desktop.py.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before pytest-qt makes the app

import pytest
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication, QWidget
from pytestqt.qtbot import QtBot

from gui.connection import DaemonConnection, Reply
from tests.conftest import Daemon

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("HEARTH_ARTIFACTS", ROOT / "artifacts"))
WAIT_MS = 400_000  # generous: on a 2-core machine shared by 8, 40 tokens took 3 minutes
SLOW = 900  # seconds: pytest-timeout for the tests that wait for the model
FAST = {"max_tokens": 12, "temperature": 0}


def screenshot(widget: QWidget, name: str) -> Path:
    """Save what the widget shows (for people to look at) and return the path."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    assert widget.grab().save(str(path)), f"could not save {path}"
    return path


def wait(qtbot: QtBot, reply: Reply, timeout: int = WAIT_MS) -> Any:
    """The reply's result; its error raised."""
    qtbot.waitUntil(lambda: reply.done, timeout=timeout)
    if reply.error is not None:
        raise reply.error
    return reply.result


@pytest.fixture
def connect(qtbot: QtBot) -> Iterator[Callable[..., DaemonConnection]]:
    """Open DaemonConnections to a daemon; each closed at the end of the test."""
    opened: list[DaemonConnection] = []

    def open_to(daemon: Daemon, autostart: bool = False) -> DaemonConnection:
        conn = DaemonConnection(daemon.paths, name="gui-test", autostart=autostart)
        with qtbot.waitSignal(conn.connected, timeout=60_000):
            conn.open()
        opened.append(conn)
        return conn

    yield open_to
    for conn in opened:
        conn.close()


def dark_palette() -> QPalette:
    """What a desktop in dark mode hands Qt (the offscreen platform has no theme)."""
    p = QPalette()
    roles = {
        QPalette.ColorRole.Window: "#202124",
        QPalette.ColorRole.WindowText: "#E8EAED",
        QPalette.ColorRole.Base: "#2A2B2E",
        QPalette.ColorRole.AlternateBase: "#323336",
        QPalette.ColorRole.Text: "#E8EAED",
        QPalette.ColorRole.Button: "#303134",
        QPalette.ColorRole.ButtonText: "#E8EAED",
        QPalette.ColorRole.Highlight: "#8AB4F8",
        QPalette.ColorRole.HighlightedText: "#202124",
        QPalette.ColorRole.PlaceholderText: "#9AA0A6",
        QPalette.ColorRole.ToolTipBase: "#303134",
        QPalette.ColorRole.ToolTipText: "#E8EAED",
        QPalette.ColorRole.Mid: "#5F6368",
        QPalette.ColorRole.Light: "#5F6368",
        QPalette.ColorRole.Dark: "#17181A",
    }
    for role, colour in roles.items():
        p.setColor(role, QColor(colour))
    p.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text, QColor("#6E7175"))
    p.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.ButtonText, QColor("#6E7175"))
    p.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.WindowText, QColor("#6E7175"))
    return p


@pytest.fixture
def dark(qapp: QApplication) -> Iterator[None]:
    saved = qapp.palette()
    qapp.setPalette(dark_palette())
    yield
    qapp.setPalette(saved)
