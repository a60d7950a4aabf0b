"""The tray's Plugins ▸ menu, notifications and plugin hotkeys, against the real daemon
running the real first-party plugins in their sandboxes (offscreen: the menu is built
and triggered as a click would; what the icon shows is read from showMessage itself).
The hotkey pressed on a real X server is in test_desktop_plugins.py."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from PySide6.QtCore import QPoint
from PySide6.QtWidgets import QMenu
from pytestqt.qtbot import QtBot

from gui.app import Hearth
from gui.connection import DaemonConnection
from gui.hotkeys import Combo, HotkeyService
from gui.icons import Look
from gui.plugins_menu import qt_keys, shorten
from tests.daemon.pluginhost.support import PluginDaemon, plugin_daemon, wait_for
from tests.gui.conftest import ARTIFACTS, SLOW, screenshot
from tests.gui.test_tray import submenu, texts

pytestmark = pytest.mark.timeout(SLOW)
Connect = Callable[..., DaemonConnection]


class RecordingBackend:
    """Records what the service registers; ``fire`` is what a key press does."""

    name = "recording"

    def __init__(self) -> None:
        self.added: dict[str, Combo] = {}
        self.fire: Callable[[str], None] = lambda action: None

    def add(self, action: str, combo: Combo) -> str:
        self.added[action] = combo
        return ""

    def remove(self, action: str) -> None:
        self.added.pop(action, None)

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def plugins() -> Iterator[PluginDaemon]:
    """daily-digest and clipboard-cleaner enabled; no display, so no clipboard."""
    with plugin_daemon(DISPLAY="", WAYLAND_DISPLAY="") as d:
        (d.user_home / "Notes").mkdir()
        d.enable("daily-digest")
        d.enable("clipboard-cleaner")
        for plugin in ("daily-digest", "clipboard-cleaner"):
            wait_for(lambda p=plugin: d.info(p)["commands"], 120, f"{plugin}'s commands")
        yield d


@pytest.fixture
def tray(qtbot: QtBot, plugins: PluginDaemon, connect: Connect) -> Iterator[Any]:
    backend = RecordingBackend()
    service = HotkeyService(backend)
    backend.fire = service._fire
    hearth = Hearth(plugins.paths, connect(plugins), service)
    shown: list[tuple[str, str]] = []
    show = hearth.tray.icon.showMessage

    def spy(title: str, text: str, *rest: Any) -> None:
        shown.append((title, text))
        show(title, text, *rest)

    hearth.tray.icon.showMessage = spy  # type: ignore[method-assign]
    hearth.plugins.start()  # what connecting does (this connection was open before)
    qtbot.waitUntil(lambda: len(hearth.plugins.enabled()) == 2, timeout=60_000)
    yield hearth, shown, backend
    service.close()


def test_the_plugins_menu_lists_enabled_plugins_commands_and_shows_a_commands_result(
    qtbot: QtBot, tray: Any
) -> None:
    hearth, shown, _ = tray
    hearth.tray.menu.popup(QPoint(0, 0))  # it rebuilds as it opens
    qtbot.waitExposed(hearth.tray.menu)
    assert texts(hearth.tray.menu)[-3:] == ["Plugins", "Settings…", "Quit Hearth"]
    menu = submenu(hearth.tray.menu, "Plugins")
    menu.popup(QPoint(0, 0))  # it refills as it opens
    qtbot.waitExposed(menu)
    assert texts(menu) == ["Clipboard cleaner", "Daily digest"]  # only the enabled ones
    digest = submenu(menu, "Daily digest")
    digest.popup(QPoint(0, 0))
    qtbot.waitExposed(digest)
    assert texts(digest) == ["digest"]
    assert "digest of the notes" in digest.actions()[0].toolTip()
    screenshot(menu, "plugins-menu")
    _save_menus(hearth.tray.menu, menu, digest)
    for shown_menu in (digest, menu, hearth.tray.menu):
        shown_menu.hide()

    digest.actions()[0].trigger()
    assert hearth.busy == 1 and hearth.tray.look is Look.GENERATING  # the icon shows work
    again = submenu(submenu(hearth.tray.menu, "Plugins"), "Daily digest")  # reopened
    assert texts(again) == ["digest (running…)"] and not again.actions()[0].isEnabled()
    day = time.strftime("%Y-%m-%d")
    qtbot.waitUntil(lambda: any(t == "Daily digest: digest" for t, _ in shown), timeout=120_000)
    result = next(text for title, text in shown if title == "Daily digest: digest")
    assert hearth.busy == 0 and hearth.tray.look is Look.IDLE
    assert result == f"# Digest for {day}\n\nNo notes changed."
    # the plugin's own ctx.notify, streamed by plugins.watch, shows as a notification too
    qtbot.waitUntil(lambda: ("Daily digest", "0 note(s) changed today") in shown, timeout=30_000)


def test_a_command_that_fails_says_why_in_a_warning(qtbot: QtBot, tray: Any) -> None:
    hearth, shown, _ = tray
    cleaner = next(p for p in hearth.plugins.enabled() if p["id"] == "clipboard-cleaner")
    hearth.plugins.run(cleaner, "clean")
    qtbot.waitUntil(lambda: any("failed" in t for t, _ in shown), timeout=120_000)
    title, text = next((t, x) for t, x in shown if "failed" in t)
    assert title == "Clipboard cleaner: clean failed"
    assert "no clipboard" in text and "DISPLAY" in text


def test_a_plugins_hotkey_is_bound_through_the_hotkey_service_and_runs_plugins_hotkey(
    qtbot: QtBot, tray: Any, plugins: PluginDaemon
) -> None:
    hearth, shown, backend = tray
    action = "plugin:clipboard-cleaner:ctrl+alt+v"
    qtbot.waitUntil(lambda: action in backend.added, timeout=30_000)
    assert backend.added[action] == Combo(frozenset({"ctrl", "alt"}), "v")
    assert hearth.hotkeys.sequences[action] == "Ctrl+Alt+V"
    before = plugins.info("clipboard-cleaner")["invocations"]
    backend.fire(action)  # the key pressed
    pressed = "Clipboard cleaner: Clean the clipboard"  # the hotkey's description
    qtbot.waitUntil(lambda: any(t.startswith(pressed) for t, _ in shown), timeout=120_000)
    title, text = next(
        (t, x) for t, x in shown if t.startswith("Clipboard cleaner: Clean the clipboard")
    )
    assert title.endswith("failed") and "no clipboard" in text  # the daemon ran the plugin
    assert plugins.info("clipboard-cleaner")["invocations"] == before + 1

    plugins.hearth("plugins", "disable", "clipboard-cleaner")
    try:
        hearth.plugins.refresh()
        qtbot.waitUntil(lambda: action not in backend.added, timeout=30_000)
        assert action not in hearth.hotkeys.sequences  # a disabled plugin's hotkey is let go
    finally:
        plugins.enable("clipboard-cleaner")


def test_plugin_keys_become_qt_sequences_and_results_are_shortened() -> None:
    assert qt_keys("ctrl+alt+v") == "Ctrl+Alt+V"
    assert qt_keys("super+shift+f5") == "Meta+Shift+F5"
    assert Combo.parse(qt_keys("ctrl+alt+space")).key == "space"
    assert shorten(None) == "Done."
    assert shorten({"a": 1}) == '{"a": 1}'
    long = shorten("x" * 1000)
    assert len(long) == 300 and long.endswith("…")


def _save_menus(*menus: QMenu) -> None:
    """Cascading menus as they open (each beside the item that opened it), for the README."""
    from PySide6.QtGui import QColor, QPainter, QPixmap

    grabs = [m.grab() for m in menus]
    places = [(0, 0)]
    for parent, child, grab in zip(menus, menus[1:], grabs, strict=False):
        item = next(a for a in parent.actions() if a.menu() is child)
        x, y = places[-1]
        places.append((x + grab.width() - 4, y + parent.actionGeometry(item).top() - 4))
    width = max(x + g.width() for (x, _), g in zip(places, grabs, strict=True))
    height = max(y + g.height() for (_, y), g in zip(places, grabs, strict=True))
    canvas = QPixmap(width + 24, height + 24)
    canvas.fill(QColor("#3c3f41"))
    painter = QPainter(canvas)
    for (x, y), grab in zip(places, grabs, strict=True):
        painter.drawPixmap(12 + x, 12 + y, grab)
    painter.end()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    assert canvas.save(str(ARTIFACTS / "tray-plugins-menu.png"))
