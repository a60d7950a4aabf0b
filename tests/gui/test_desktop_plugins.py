"""A plugin's hotkey end to end on a real X desktop (Xvfb, trayer): the real tray binds
clipboard-cleaner's ctrl+alt+v from plugins.list through its global hotkey service
(XGrabKey), xdotool presses it, and the daemon runs the sandboxed plugin on the X
clipboard through plugins.hotkey; the clipboard is read back from outside."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from tests.daemon.pluginhost.support import REPO, PluginDaemon, plugin_daemon
from tests.gui.conftest import ARTIFACTS, SLOW
from tests.gui.desktop import Desktop, clipboard, log_size, start_desktop, wait_log
from tests.plugins.test_clipboard_cleaner import _set as set_clipboard

pytestmark = pytest.mark.timeout(SLOW)
DIRTY = "Read   https://shop.example/item?id=42&utm_source=news&fbclid=abc  \n\n\n\nthanks  "
CLEAN = "Read https://shop.example/item?id=42\n\nthanks"


@pytest.fixture(scope="module")
def desk() -> Iterator[Desktop]:
    desktop = start_desktop()
    yield desktop
    desktop.stop()


@pytest.fixture(scope="module")
def plugins(desk: Desktop) -> Iterator[PluginDaemon]:
    """The daemon in the desktop's session (its clipboard), clipboard-cleaner enabled;
    keep_alive 0, so the tray does not warm a model it does not need here."""
    with plugin_daemon("keep_alive = 0\n", DISPLAY=desk.display) as d:
        d.enable("clipboard-cleaner")
        yield d


@pytest.fixture(scope="module")
def tray(desk: Desktop, plugins: PluginDaemon) -> Iterator[subprocess.Popen[bytes]]:
    (plugins.paths.data).mkdir(parents=True, exist_ok=True)
    (plugins.paths.data / "tray.json").write_text(json.dumps({"seen_model_intro": True}))
    env = {**desk.env, "HEARTH_HOME": str(plugins.root), "HOME": str(plugins.user_home),
           "PYTHONPATH": str(REPO)}  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "daemon", "tray"], env=env, cwd=REPO,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    yield proc
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def read_clipboard(desk: Desktop) -> str | None:
    """What the clipboard holds, or None while nobody owns it (xclip -o then fails)."""
    try:
        return clipboard(desk)
    except subprocess.CalledProcessError:
        return None


def test_a_plugin_hotkey_pressed_runs_the_plugin_through_plugins_hotkey(
    desk: Desktop, plugins: PluginDaemon, tray: subprocess.Popen[bytes]
) -> None:
    log = plugins.paths.logs / "tray.log"
    action = r"plugin:clipboard-cleaner:ctrl\+alt\+v"
    wait_log(log, rf"hotkey for {action} registered \(Ctrl\+Alt\+V, x11\)", timeout=120)
    set_clipboard(desk.display, DIRTY)
    before = plugins.info("clipboard-cleaner")["invocations"]
    mark = log_size(log)
    desk.xdotool("key", "ctrl+alt+v")
    wait_log(log, rf"hotkey pressed: {action}", mark)
    wait_log(log, r"plugin clipboard-cleaner ctrl\+alt\+v: finished", mark, timeout=120)
    deadline = time.monotonic() + 20  # the daemon's xclip takes the selection just after
    while (now := read_clipboard(desk)) != CLEAN and time.monotonic() < deadline:
        time.sleep(0.05)
    assert now == CLEAN  # the daemon wrote the plugin's result to the clipboard
    assert plugins.info("clipboard-cleaner")["invocations"] == before + 1
    shot = desk.screenshot(ARTIFACTS / "plugin-hotkey-notification.png")
    corner = shot.copy(shot.width() - 440, shot.height() - 170, 440, 170)  # the tray's corner
    assert corner.save(str(ARTIFACTS / "tray-plugin-notification.png"))
    assert tray.poll() is None and os.path.exists(plugins.paths.socket)
