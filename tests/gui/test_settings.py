"""Settings against the real daemon: every change persists, and a new window shows it."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QComboBox
from pytestqt.qtbot import QtBot

from gui.connection import DaemonConnection
from gui.settings import SettingsWindow
from tests.conftest import Daemon
from tests.gui.conftest import screenshot

Connect = Callable[..., DaemonConnection]


def open_settings(qtbot: QtBot, conn: DaemonConnection) -> SettingsWindow:
    win = SettingsWindow(conn)
    qtbot.addWidget(win)
    win.show()
    settle(qtbot, win)
    qtbot.waitUntil(lambda: win.model_box.count() > 0 and win.presets_tab.preset_list.count() > 0)
    return win


def settle(qtbot: QtBot, win: SettingsWindow) -> None:
    qtbot.waitUntil(lambda: win.pending == 0, timeout=30_000)


def choose(combo: QComboBox, value: object) -> None:
    """What a user's pick does: select the item, and Qt says it was activated."""
    index = combo.findData(value)
    assert index >= 0, value
    combo.setCurrentIndex(index)
    combo.activated.emit(index)


def test_settings_round_trip_through_the_daemon(
    qtbot: QtBot, fresh_daemon: Daemon, connect: Connect
) -> None:
    conn = connect(fresh_daemon)
    win = open_settings(qtbot, conn)
    choose(win.keep_alive, 1800)
    choose(win.engine_box, "llamacpp")
    win.tabs.setCurrentIndex(1)
    win.keep_history.click()  # off
    choose(win.retention, 30)
    win.hotkey_edits["rewrite"].setKeySequence(QKeySequence("Ctrl+Alt+R"))
    win.hotkey_edits["rewrite"].editingFinished.emit()
    settle(qtbot, win)
    assert win.banner.text() == "Saved."

    with fresh_daemon.client() as c:
        prefs = c.call("prefs.get")["prefs"]
        settings = c.call("settings.get")["settings"]
        assert c.call("status")["keep_alive_s"] == 1800
    assert prefs["keep_alive"] == 1800 and prefs["engine"] == "llamacpp"
    assert prefs["hotkeys"]["rewrite"] == "Ctrl+Alt+R"
    assert settings == {"keep_history": False, "retention_days": 30}
    on_disk = tomllib.loads(Path(fresh_daemon.paths.config_file).read_text())
    assert on_disk["keep_alive"] == 1800 and on_disk["hotkeys"]["rewrite"] == "Ctrl+Alt+R"

    again = open_settings(qtbot, conn)  # what a new window shows is what was stored
    assert again.keep_alive.currentData() == 1800
    assert again.engine_box.currentData() == "llamacpp"
    assert not again.keep_history.isChecked()
    assert again.retention.currentData() == 30
    assert again.hotkey_edits["rewrite"].keySequence() == QKeySequence("Ctrl+Alt+R")


def test_custom_presets_are_added_edited_and_removed(
    qtbot: QtBot, fresh_daemon: Daemon, connect: Connect
) -> None:
    win = open_settings(qtbot, connect(fresh_daemon))
    win.tabs.setCurrentIndex(2)
    builtin = win.presets_tab.preset_list.item(0)
    win.presets_tab.preset_list.setCurrentItem(builtin)
    assert not win.presets_tab.edit_preset_button.isEnabled()  # built-in presets are read-only

    win.presets_tab.add_preset_button.click()
    dialog = win.presets_tab.preset_dialog
    assert dialog is not None and dialog.isVisible()
    dialog.name.setText("pirate")
    dialog.instruction.setPlainText("Rewrite this text as a pirate would say it.")
    dialog.accept()
    settle(qtbot, win)
    qtbot.waitUntil(lambda: any(p["name"] == "pirate" for p in win.presets_tab.presets))
    screenshot(win, "settings-presets")

    item = win.presets_tab.preset_list.findItems("pirate", Qt.MatchFlag.MatchStartsWith)[0]
    win.presets_tab.preset_list.setCurrentItem(item)
    assert win.presets_tab.edit_preset_button.isEnabled()
    win.presets_tab.edit_preset_button.click()
    dialog = win.presets_tab.preset_dialog
    assert dialog is not None and dialog.name.text() == "pirate"
    dialog.name.setText("pirate-speak")
    dialog.instruction.setPlainText("Talk like a pirate.")
    dialog.accept()
    settle(qtbot, win)
    with fresh_daemon.client() as c:
        presets = {p["name"]: p["instruction"] for p in c.call("rewrite.presets")["presets"]}
    assert presets.get("pirate-speak") == "Talk like a pirate." and "pirate" not in presets
    assert "Talk like a pirate." in Path(fresh_daemon.paths.config_file).read_text()

    item = win.presets_tab.preset_list.findItems("pirate-speak", Qt.MatchFlag.MatchStartsWith)[0]
    win.presets_tab.preset_list.setCurrentItem(item)
    win.presets_tab.remove_preset_button.click()
    settle(qtbot, win)
    with fresh_daemon.client() as c:
        names = [p["name"] for p in c.call("rewrite.presets")["presets"]]
    assert "pirate-speak" not in names and "proofread" in names


def test_a_refused_change_is_explained_and_the_real_value_shown(
    qtbot: QtBot, fresh_daemon: Daemon, connect: Connect
) -> None:
    win = open_settings(qtbot, connect(fresh_daemon))
    win.presets_tab.add_preset_button.click()
    assert win.presets_tab.preset_dialog is not None
    win.presets_tab.preset_dialog.name.setText("proofread")  # a built-in name
    win.presets_tab.preset_dialog.instruction.setPlainText("x")
    win.presets_tab.preset_dialog.accept()
    settle(qtbot, win)
    assert "exists already" in win.banner.text()


def test_network_mode_and_allowed_hosts_are_set_from_the_network_tab(
    qtbot: QtBot, fresh_daemon: Daemon, connect: Connect
) -> None:
    win = open_settings(qtbot, connect(fresh_daemon))
    win.tabs.setCurrentIndex(4)
    assert win.mode_buttons["offline"].isChecked()
    win.mode_buttons["allow-listed"].click()
    win.host_edit.setText("models.example.org")
    win.allow_button.click()
    settle(qtbot, win)
    with fresh_daemon.client() as c:
        status = c.call("net.status")
    assert status["mode"] == "allow-listed"
    assert [r["host"] for r in status["rules"]] == ["models.example.org"]
    qtbot.waitUntil(lambda: win.hosts.count() == 1)
    screenshot(win, "settings-network")
