"""`hearth tray` on a real X desktop (Xvfb) with a real tray host (trayer), driven with
xdotool as a person would: the icon, its menu, the chat, a daemon crash and recovery."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.client import Client
from daemon.paths import Paths
from tests.conftest import make_home
from tests.gui.conftest import ARTIFACTS, SLOW
from tests.gui.desktop import Desktop, flame_pixels, log_size, start_desktop, wait_log

pytestmark = pytest.mark.timeout(SLOW)  # they wait for the model
ANSWER_S = 240  # an answer on a loaded 2-core machine can crawl


@pytest.fixture
def desktop() -> Iterator[Desktop]:
    desk = start_desktop()
    yield desk
    desk.stop()


def daemon_pid(paths: Paths) -> int:
    with Client.connect(paths.socket) as c:
        return int(c.call("status")["pid"])


def test_the_tray_icon_menu_and_chat_on_a_real_desktop(desktop: Desktop) -> None:
    home = make_home("keep_alive = -1\n")
    (home / "data").mkdir(mode=0o700)
    (home / "data" / "tray.json").write_text(json.dumps({"seen_model_intro": True}))
    paths = Paths.from_env({"HEARTH_HOME": str(home)})
    log = paths.logs / "tray.log"
    env = {**desktop.env, "HEARTH_HOME": str(home)}
    before = desktop.screenshot(ARTIFACTS / "desktop-before.png")
    w, h = before.width(), before.height()
    assert not flame_pixels(before, w - 300, h - 40, w, h)  # nothing of ours there yet

    tray = subprocess.Popen(
        [sys.executable, "-m", "daemon", "tray"], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_log(log, r"tray icon shown")
        wait_log(log, r"connected to the daemon", timeout=120)
        wait_log(log, r"tray icon: idle")
        shot = desktop.screenshot(ARTIFACTS / "desktop-tray.png")
        flame = flame_pixels(shot, w - 300, h - 40, w, h)
        assert len(flame) > 40, "no tray icon in the tray area"
        x = sum(p[0] for p in flame) // len(flame)
        y = sum(p[1] for p in flame) // len(flame)

        desktop.xdotool("mousemove", str(x), str(y), "click", "3")  # the menu
        deadline = time.monotonic() + 30
        while not desktop.windows("Hearth menu") and time.monotonic() < deadline:
            time.sleep(0.2)
        menu = desktop.screenshot(ARTIFACTS / "tray-menu.png")
        light = sum(
            1 for yy in range(h - 220, h - 40, 4) for xx in range(w - 260, w, 4)
            if menu.pixelColor(xx, yy).lightness() > 200
        )  # fmt: skip
        assert light > 400, "the tray menu did not open"
        menu.copy(w - 300, h - 230, 300, 230).save(str(ARTIFACTS / "tray-menu-crop.png"))
        desktop.xdotool("key", "Down", "Return")  # "Open chat", the first item

        deadline = time.monotonic() + 30
        while not (chat := [g for g in desktop.windows("Hearth") if g[2] > 400]):
            assert time.monotonic() < deadline, "the chat window did not open"
            time.sleep(0.2)
        cx, cy, cw, ch = chat[0]
        send_message(desktop, log, cx + cw // 2, cy + ch - 60, "Say hello in five words.")
        shown = wait_answer(desktop, log, 0)
        desktop.screenshot(ARTIFACTS / "desktop-chat.png")
        with Client.connect(paths.socket) as c:
            convs = c.call("conversations.list")["conversations"]
            stored = c.call("conversations.get", {"id": convs[0]["id"]})
        assert stored["messages"][0]["content"] == "Say hello in five words."
        assert len(stored["messages"][-1]["content"]) == shown > 0

        first = daemon_pid(paths)
        mark = log_size(log)
        os.kill(first, signal.SIGKILL)  # the daemon crashes while the window is open
        wait_log(log, r"chat window: says the daemon is out of reach", mark)
        desktop.screenshot(ARTIFACTS / "desktop-daemon-lost.png")
        wait_log(log, r"started the daemon", mark, timeout=60)  # the tray restarts it
        wait_log(log, r"chat window: says the daemon is back", mark, timeout=120)
        assert daemon_pid(paths) != first
        mark = log_size(log)
        send_message(desktop, log, cx + cw // 2, cy + ch - 60, "And goodbye?")
        assert wait_answer(desktop, log, mark) > 0
        desktop.screenshot(ARTIFACTS / "desktop-recovered.png")
        assert tray.poll() is None, "the tray process died"
        tray.terminate()
        assert tray.wait(30) == 0  # SIGTERM quits cleanly
    finally:
        if tray.poll() is None:
            tray.kill()
            tray.wait()
        with contextlib.suppress(Exception):  # no daemon left is fine too
            os.kill(daemon_pid(paths), signal.SIGTERM)
        shutil.rmtree(home, ignore_errors=True)


def send_message(desktop: Desktop, log: Path, x: int, y: int, text: str) -> None:
    """Type into the focused composer with the pointer over the window (no window
    manager here: X gives the keyboard to the window under the pointer)."""
    desktop.xdotool("mousemove", str(x), str(y))
    desktop.xdotool("type", "--delay", "30", text)
    desktop.xdotool("key", "Return")


def wait_answer(desktop: Desktop, log: Path, after: int) -> int:
    """Wait for the streamed answer to be shown; a long one is stopped with Esc once its
    first words are on screen. Returns how many characters were shown."""
    wait_log(log, r"chat: first words after", after, timeout=ANSWER_S)
    try:
        done = wait_log(log, r"chat: answer shown \((\d+) chars", after, timeout=60)
    except AssertionError:
        desktop.xdotool("key", "Escape")
        done = wait_log(log, r"chat: answer shown \((\d+) chars", after, timeout=60)
    return int(done.group(1))
