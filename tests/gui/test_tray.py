"""The tray's controller and menu against the real daemon (offscreen: the icon exists,
the menu is built and triggered as a click would)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PySide6.QtGui import QAction, QGuiApplication
from PySide6.QtWidgets import QMenu, QMessageBox
from pytestqt.qtbot import QtBot

from gui.app import Hearth
from gui.connection import DaemonConnection
from gui.icons import Look
from gui.model_choice import ModelChoice
from tests.conftest import Daemon
from tests.gui.conftest import SLOW

pytestmark = pytest.mark.timeout(SLOW)  # they wait for the model
Connect = Callable[..., DaemonConnection]


@pytest.fixture
def hearth(qtbot: QtBot, daemon: Daemon, connect: Connect, tmp_path: Path) -> Iterator[Hearth]:
    yield make(qtbot, daemon, connect)


def make(qtbot: QtBot, daemon: Daemon, connect: Connect) -> Hearth:
    conn = connect(daemon)
    h = Hearth(daemon.paths, conn)
    h.refresh()
    qtbot.waitUntil(lambda: {"status", "models", "net", "vault", "presets"} <= set(h.snapshot))
    h._update_look()
    return h


def texts(menu: QMenu) -> list[str]:
    return [a.text() for a in menu.actions() if not a.isSeparator()]


def submenu(menu: QMenu, title: str) -> QMenu:
    action = next(a for a in menu.actions() if a.text() == title)
    sub = action.menu()
    assert isinstance(sub, QMenu)
    sub.aboutToShow.emit()  # what opening it does
    return sub


def test_the_menu_is_built_from_sections_with_everything_the_issue_lists(
    qtbot: QtBot, hearth: Hearth
) -> None:
    hearth.tray.menu.aboutToShow.emit()
    assert texts(hearth.tray.menu) == [
        "Open chat", "Rewrite clipboard", "Model", "Offline mode", "Privacy", "Plugins",
        "Settings…", "Quit Hearth",
    ]  # fmt: skip
    assert "proofread" in texts(submenu(hearth.tray.menu, "Rewrite clipboard"))
    models = submenu(hearth.tray.menu, "Model")
    names = texts(models)
    assert names[0].startswith(("Loaded:", "No model loaded"))
    assert any(n.startswith("smollm2") for n in names) and names[-1] == "Unload now"
    better = next(a for a in models.actions() if a.text() == "Download a better model…")
    better.trigger()  # the first-run model screen, again
    qtbot.waitUntil(lambda: hearth.first_run.intro_dialog is not None, timeout=30_000)
    assert isinstance(hearth.first_run.intro_dialog, ModelChoice)
    assert hearth.first_run.intro_dialog.isVisible()
    hearth.first_run.intro_dialog.reject()
    assert texts(submenu(hearth.tray.menu, "Privacy")) == [
        "Audit log…", "What left this machine…",
    ]  # fmt: skip


def test_rewrite_clipboard_puts_the_rewritten_text_back_and_the_icon_shows_work(
    qtbot: QtBot, hearth: Hearth
) -> None:
    clipboard = QGuiApplication.clipboard()
    clipboard.setText("i has went to the store yesterday")
    assert hearth.tray.look is Look.IDLE
    hearth.rewrite_clipboard("proofread")
    assert hearth.tray.look is Look.GENERATING
    qtbot.waitUntil(lambda: hearth.busy == 0, timeout=180_000)
    assert hearth.tray.look is Look.IDLE
    assert clipboard.text() and clipboard.text() != "i has went to the store yesterday"


def test_a_failed_rewrite_turns_the_icon_to_error_until_the_next_success(
    qtbot: QtBot, hearth: Hearth
) -> None:
    QGuiApplication.clipboard().setText("some text")
    hearth.rewrite_clipboard("no-such-preset")
    qtbot.waitUntil(lambda: hearth.busy == 0, timeout=30_000)
    assert hearth.tray.look is Look.ERROR
    assert "unknown preset" in hearth.tray.icon.toolTip()
    hearth.snapshot["vault"] = {"locked": True, "reason": "passphrase_locked"}
    hearth.error = ""
    hearth._update_look()
    assert hearth.tray.look is Look.LOCKED


def test_offline_mode_from_the_menu_switches_the_network_policy(
    qtbot: QtBot, hearth: Hearth, daemon: Daemon
) -> None:
    hearth.tray.menu.aboutToShow.emit()
    offline = next(a for a in hearth.tray.menu.actions() if a.text() == "Offline mode")
    assert isinstance(offline, QAction) and offline.isChecked()
    offline.trigger()  # unchecks it
    qtbot.waitUntil(lambda: (hearth.snapshot["net"] or {}).get("mode") == "allow-listed")
    with daemon.client() as c:
        assert c.call("net.status")["mode"] == "allow-listed"
    hearth.set_offline(True)
    qtbot.waitUntil(lambda: hearth.snapshot["net"]["mode"] == "offline")


def test_quit_asks_and_can_stop_the_daemon_too(
    qtbot: QtBot, fresh_daemon: Daemon, connect: Connect
) -> None:
    hearth = make(qtbot, fresh_daemon, connect)
    exits: list[int] = []
    hearth.exit = exits.append
    hearth.ask_quit()
    box = hearth.quit_box
    assert box is not None and box.isVisible()
    buttons = {b.text(): b for b in box.buttons()}
    assert set(buttons) >= {"Quit and stop the service", "Quit, keep it running"}
    box.button(QMessageBox.StandardButton.Cancel).click()
    assert exits == [] and fresh_daemon.proc.poll() is None

    hearth.ask_quit()
    assert hearth.quit_box is not None
    next(b for b in hearth.quit_box.buttons() if b.text().startswith("Quit and stop")).click()
    assert exits == [0]
    assert fresh_daemon.proc.wait(30) == 0  # stopped cleanly (SIGTERM), not killed
