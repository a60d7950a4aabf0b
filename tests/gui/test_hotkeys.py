"""The global hotkey service: key sequences, X11 grabs on a real X server (Xvfb) pressed
with xdotool, a combination another program holds, and what Settings says about it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PySide6.QtGui import QKeySequence
from pytestqt.qtbot import QtBot

from gui.app import Hearth
from gui.connection import DaemonConnection
from gui.hotkeys import Combo, HotkeyService, NoBackend, X11Backend
from gui.hotkeys_pynput import modifiers_held, pynput_hotkey
from gui.portal import trigger
from gui.settings import SettingsWindow
from tests.conftest import Daemon
from tests.gui.desktop import Desktop, start_xvfb

HERE = Path(__file__).resolve().parent


@pytest.fixture
def xvfb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Desktop]:
    """A bare X server; the hotkey backend connects to it (Qt itself stays offscreen)."""
    desk = start_xvfb()
    monkeypatch.setenv("DISPLAY", desk.display)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    yield desk
    desk.stop()


@pytest.fixture
def service(xvfb: Desktop) -> Iterator[HotkeyService]:
    hotkeys = HotkeyService(X11Backend(lambda a: hotkeys._fire(a)))
    yield hotkeys
    hotkeys.close()


@pytest.fixture
def other_program(xvfb: Desktop) -> Iterator[subprocess.Popen[str]]:
    """Another X client that holds Ctrl+Alt+R."""
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "grab_key.py"), "ctrl+alt+r"],
        env=xvfb.env, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline().strip() == "grabbed"
    yield proc
    proc.terminate()
    proc.wait(10)


def test_key_sequences_are_read_from_qt_portable_text() -> None:
    assert Combo.parse("Ctrl+Alt+R") == Combo(frozenset({"ctrl", "alt"}), "r")
    assert Combo.parse("Meta+Shift+F5") == Combo(frozenset({"meta", "shift"}), "F5")
    assert Combo.parse("Ctrl+Alt+,") == Combo(frozenset({"ctrl", "alt"}), "comma")
    assert Combo.parse("F9") == Combo(frozenset(), "F9")  # a function key may stand alone
    bad_ones = [("R", "needs Ctrl"), ("Shift+A", "needs Ctrl"), ("", "not one key"),
                ("Ctrl+A, Ctrl+B", "not one key"), ("Ctrl+Alt+Nope", "not one key")]  # fmt: skip
    for bad, why in bad_ones:
        with pytest.raises(ValueError, match=why):
            Combo.parse(bad)


def test_each_platform_gets_the_combination_in_its_own_words() -> None:
    combo = Combo.parse("Ctrl+Alt+R")
    assert pynput_hotkey(combo, "win32") == "<ctrl>+<alt>+r"
    assert pynput_hotkey(combo, "darwin") == "<cmd>+<alt>+r"  # Qt's Ctrl is ⌘ on macOS
    assert pynput_hotkey(Combo.parse("Ctrl+PgUp"), "win32") == "<ctrl>+<page_up>"
    assert trigger(combo) == "CTRL+ALT+r"  # the XDG shortcuts spec
    assert trigger(Combo.parse("Meta+Return")) == "LOGO+Return"


def test_where_the_held_keys_cannot_be_read_the_copy_does_not_wait_for_them() -> None:
    """Windows and macOS read them from the system (not testable here); anywhere the
    call is missing, the simulated copy goes ahead rather than wait for nothing."""
    assert modifiers_held("linux") is False
    assert modifiers_held("darwin") is False  # no ApplicationServices on this machine
    assert modifiers_held("win32") is False  # no ctypes.windll here


def test_a_hotkey_pressed_in_x_runs_its_handler_in_qt(
    qtbot: QtBot, xvfb: Desktop, service: HotkeyService
) -> None:
    pressed: list[str] = []
    assert service.bind("rewrite", "Ctrl+Alt+R", lambda: pressed.append("rewrite")) == ""
    assert service.bind("open_chat", "Ctrl+Alt+H", lambda: pressed.append("chat")) == ""
    xvfb.xdotool("key", "ctrl+alt+r")
    qtbot.waitUntil(lambda: pressed == ["rewrite"], timeout=10_000)
    xvfb.xdotool("key", "ctrl+alt+h")
    qtbot.waitUntil(lambda: pressed == ["rewrite", "chat"], timeout=10_000)
    xvfb.xdotool("key", "ctrl+r", "alt+r", "r")  # other combinations are not ours
    service.unbind("rewrite")
    xvfb.xdotool("key", "ctrl+alt+r")
    xvfb.xdotool("key", "ctrl+alt+h")  # a marker: once it arrives, the rest did too
    qtbot.waitUntil(lambda: len(pressed) == 3, timeout=10_000)
    assert pressed == ["rewrite", "chat", "chat"]


def test_caps_lock_and_num_lock_do_not_stop_a_hotkey(
    qtbot: QtBot, xvfb: Desktop, service: HotkeyService
) -> None:
    pressed: list[str] = []
    service.bind("rewrite", "Ctrl+Alt+R", lambda: pressed.append("rewrite"))
    xvfb.xdotool("key", "Caps_Lock", "Num_Lock")
    xvfb.xdotool("key", "ctrl+alt+r")
    qtbot.waitUntil(lambda: pressed == ["rewrite"], timeout=10_000)


def test_a_combination_another_program_holds_is_refused_with_a_clear_message(
    qtbot: QtBot, xvfb: Desktop, service: HotkeyService,
    other_program: subprocess.Popen[str],
) -> None:  # fmt: skip
    pressed: list[str] = []
    problem = service.bind("rewrite", "Ctrl+Alt+R", lambda: pressed.append("rewrite"))
    assert "another program already uses this combination" in problem
    assert "Settings ▸ Hotkeys" in problem
    assert service.problems == {"rewrite": problem}
    xvfb.xdotool("key", "ctrl+alt+r")  # goes to the other program, not to us
    assert service.bind("open_chat", "Ctrl+Alt+H", lambda: pressed.append("chat")) == ""
    xvfb.xdotool("key", "ctrl+alt+h")
    qtbot.waitUntil(lambda: pressed == ["chat"], timeout=10_000)

    other_program.terminate()  # it lets go: binding again works
    other_program.wait(10)
    assert service.bind("rewrite", "Ctrl+Alt+R", lambda: pressed.append("rewrite")) == ""
    assert "rewrite" not in service.problems
    xvfb.xdotool("key", "ctrl+alt+r")
    qtbot.waitUntil(lambda: pressed == ["chat", "rewrite"], timeout=10_000)


def test_one_combination_cannot_serve_two_actions(xvfb: Desktop, service: HotkeyService) -> None:
    assert service.bind("rewrite", "Ctrl+Alt+R", lambda: None) == ""
    assert "another Hearth action" in service.bind("open_chat", "Ctrl+Alt+R", lambda: None)


def test_without_a_backend_every_hotkey_says_what_to_do_instead() -> None:
    service = HotkeyService(NoBackend("no global shortcuts here; bind `hearth rewrite "
                                      "--selection` in your desktop's settings"))  # fmt: skip
    problem = service.bind("rewrite", "Ctrl+Alt+R", lambda: None)
    assert "hearth rewrite --selection" in problem
    assert service.bind("open_chat", "", lambda: None) == ""  # none wanted: no problem


def test_the_tray_tells_which_hotkey_it_could_not_have_and_settings_shows_why(
    qtbot: QtBot, fresh_daemon: Daemon, connect: Callable[..., DaemonConnection],
    service: HotkeyService, other_program: subprocess.Popen[str],
) -> None:  # fmt: skip
    with fresh_daemon.client() as c:  # a preset's own hotkey, as Settings saves it
        c.call("prefs.set", {"key": "hotkeys", "value": {"rewrite:concise": "Ctrl+Alt+C"}})
    conn = connect(fresh_daemon)
    hearth = Hearth(fresh_daemon.paths, conn, service)
    told: list[tuple[str, str]] = []
    hearth.tray.notify = lambda title, text, error=False: told.append((title, text))  # type: ignore[method-assign]
    hearth.apply_hotkeys({"rewrite:concise": "Ctrl+Alt+C"})  # and the default Ctrl+Alt+R
    assert told == [("Ctrl+Alt+R is not available",
                     service.problems["rewrite"])]  # fmt: skip
    assert "another program already uses this combination" in told[0][1]
    assert service.sequences == {"rewrite": "Ctrl+Alt+R", "rewrite:concise": "Ctrl+Alt+C"}
    hearth.apply_hotkeys({"rewrite:concise": "Ctrl+Alt+C"})  # the same again: told once
    assert len(told) == 1

    settings = SettingsWindow(conn, service)
    qtbot.addWidget(settings)
    qtbot.waitUntil(lambda: "rewrite:concise" in settings.hotkey_edits, timeout=30_000)
    assert "another program" in settings.hotkey_status["rewrite"].text()
    assert settings.hotkey_status["rewrite:concise"].text() == "Active"
    assert settings.hotkey_edits["rewrite"].keySequence().toString() == "Ctrl+Alt+R"

    settings.hotkey_edits["rewrite"].setKeySequence(QKeySequence("Ctrl+Alt+W"))
    with qtbot.waitSignal(settings.hotkeys_saved, timeout=30_000) as saved:
        settings._save_hotkeys()
    assert saved.args[0]["rewrite"] == "Ctrl+Alt+W"
    assert "rewrite:proofread" not in saved.args[0]  # unset rows are not written
    hearth.apply_hotkeys(saved.args[0])  # what the tray does with it
    assert "rewrite" not in service.problems
    qtbot.waitUntil(lambda: settings.hotkey_status["rewrite"].text() == "Active", timeout=5000)
    toml = (fresh_daemon.home / "config" / "config.toml").read_text()
    assert 'rewrite = "Ctrl+Alt+W"' in toml and '"rewrite:concise" = "Ctrl+Alt+C"' in toml
