"""The tray's rewrite runs (gui/rewriter.py) against the real daemon, offscreen: what it
asks the daemon before any hotkey is pressed."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from pytestqt.qtbot import QtBot

from gui.connection import DaemonConnection
from gui.rewriter import DEFAULT_PRESET, SelectionRewriter
from tests.conftest import Daemon
from tests.gui.conftest import SLOW, WAIT_MS

pytestmark = pytest.mark.timeout(SLOW)  # the warm-up loads the model
Connect = Callable[..., DaemonConnection]


def test_the_warm_up_never_sends_a_remote_presets_request_out(
    qtbot: QtBot, daemon: Daemon, connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    """Warming is for the local model: with a remote preset last used, the warm-up runs
    the default preset locally instead of calling out before the user asked."""
    rewriter = SelectionRewriter(connect(daemon), None, lambda *_: None)
    remote = {"name": "polish", "instruction": "Polish it.", "route": "remote"}
    rewriter.set_presets([*rewriter.presets, remote])
    rewriter.last_preset = "polish"
    assert rewriter.routed_remote("polish") and not rewriter.routed_remote(DEFAULT_PRESET)
    with caplog.at_level(logging.INFO, logger="hearth.tray"):
        rewriter.warm()
        qtbot.waitUntil(lambda: "rewrite: warm" in caplog.text, timeout=WAIT_MS)
    assert f"rewrite: warmed {DEFAULT_PRESET} (" in caplog.text, caplog.text
