"""The rewrite hotkey end to end, on a real X desktop (Xvfb, trayer) with the real tray,
daemon and default model: another application's text field (tests/gui/text_app.py, a
process of its own) is selected and rewritten with keys sent by xdotool, as a person
would; the field and the clipboard are then read back from outside."""

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from daemon.client import Client
from daemon.paths import Paths
from tests.conftest import make_home
from tests.gui.conftest import ARTIFACTS, SLOW
from tests.gui.desktop import (
    Desktop,
    TextApp,
    clipboard,
    log_size,
    start_desktop,
    start_xvfb,
    wait_log,
)

pytestmark = pytest.mark.timeout(SLOW)  # they wait for the model
ANSWER_S = 300  # a rewrite on a loaded 2-core machine can crawl
SENTENCE = "i has went to the store yesterday and buyed three apple for my mother."
BEFORE = "what was on the clipboard before"
CONFIG = """keep_alive = -1

[[presets]]
name = "essay"
instruction = "Write a very long essay, at least 600 words, inspired by this text."

[hotkeys]
"rewrite:essay" = "Ctrl+Alt+E"
"""


@dataclass
class Tray:
    desk: Desktop
    home: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def paths(self) -> Paths:
        return Paths.from_env({"HEARTH_HOME": str(self.home)})

    @property
    def env(self) -> dict[str, str]:
        return {**self.desk.env, "HEARTH_HOME": str(self.home)}

    @property
    def log(self) -> Path:
        return self.paths.logs / "tray.log"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "daemon", "tray"], env=self.env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def hearth(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "daemon", *args], env=self.env, capture_output=True,
            text=True, timeout=timeout,
        )  # fmt: skip

    def direct(self, text: str, preset: str, cold: bool = False) -> dict[str, Any]:
        """The same rewrite asked of the daemon directly (greedy, as the popup asks).

        ``cold``: from a freshly loaded model, as a daemon's first request runs. Greedy
        output can depend on the KV cache: reusing a cached prefix evaluates the rest in
        other batches, whose float sums round differently."""
        with Client.connect(self.paths.socket) as c:
            if cold:
                c.call("models.unload", {"model": "default"})
            result: dict[str, Any] = c.call(
                "rewrite", {"text": text, "preset": preset, "options": {"temperature": 0}}
            )
        return result

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.hearth("down")


def new_home(config: str = CONFIG) -> Path:
    home = make_home(config)
    (home / "data").mkdir(mode=0o700)
    (home / "data" / "tray.json").write_text(json.dumps({"seen_model_intro": True}))
    return home


@pytest.fixture(scope="module")
def tray() -> Iterator[Tray]:
    """One desktop and one tray for the tests that only use it (each its own app)."""
    desk = start_desktop()
    t = Tray(desk, new_home())
    t.start()
    try:
        wait_log(t.log, r"hotkey for rewrite registered \(Ctrl\+Alt\+R, x11\)")
        wait_log(t.log, r"connected to the daemon", timeout=120)
        wait_log(t.log, r"rewrite: warmed rewrite", timeout=ANSWER_S)  # the model is warm
        yield t
    finally:
        t.stop()
        desk.stop()
        shutil.rmtree(t.home, ignore_errors=True)


def accept_when_written(tray: Tray, mark: int, shot: str | None = None) -> str:
    """Wait for the rewrite in the popup, then press Enter as the user would."""
    done = wait_log(tray.log, r"rewrite popup: (finished|failed)", mark, timeout=ANSWER_S)
    assert done.group(1) == "finished", tray.log.read_text()[mark:]
    if shot:
        tray.desk.screenshot(ARTIFACTS / f"{shot}.png")
    tray.desk.xdotool("key", "Return")
    return done.group(0)


def test_the_hotkey_replaces_the_selection_with_the_models_rewrite_and_keeps_the_clipboard(
    tray: Tray,
) -> None:
    app = TextApp(tray.desk, SENTENCE, clipboard=BEFORE)
    try:
        app.select_all()
        mark = log_size(tray.log)
        tray.desk.xdotool("key", "ctrl+alt+r")
        wait_log(tray.log, r"selection: primary", mark)  # read without a keystroke
        accept_when_written(tray, mark, shot="hotkey-popup")
        replaced, _ = app.wait_text(timeout=60)
        wait_log(tray.log, r"rewrite: replaced", mark)
        expected = tray.direct(SENTENCE, "rewrite")["text"]
        assert replaced == expected
        assert replaced.strip() and replaced != SENTENCE

        assert clipboard(tray.desk) == BEFORE  # put back, in every format it had
        assert "text/html" in clipboard(tray.desk, "TARGETS").split()
        assert f"<b>{BEFORE}</b>" in clipboard(tray.desk, "text/html")

        app.point()
        tray.desk.xdotool("key", "ctrl+z")  # one paste: one step of the app's own undo
        assert app.wait_text()[0] == SENTENCE
    finally:
        app.close()


def test_with_nothing_selected_a_notice_and_nothing_touched(tray: Tray) -> None:
    app = TextApp(tray.desk, SENTENCE, clipboard=BEFORE)
    try:
        app.point()
        tray.desk.xdotool("click", "1")  # a cursor in the field, no selection
        mark = log_size(tray.log)
        tray.desk.xdotool("key", "ctrl+alt+r")
        wait_log(tray.log, r"selection: none", mark)  # tried PRIMARY, then a copy
        wait_log(tray.log, r"rewrite: nothing after", mark)
        tray.desk.screenshot(ARTIFACTS / "hotkey-nothing-selected.png")
        assert "popup" not in tray.log.read_text()[mark:]
        assert not app.changed() and app.text == SENTENCE
        assert clipboard(tray.desk) == BEFORE
    finally:
        app.close()


def test_a_selection_primary_does_not_vouch_for_is_copied_and_the_clipboard_put_back(
    tray: Tray,
) -> None:
    """The focused app has a selection, but another program owns PRIMARY (a stale
    selection, here xclip's): a simulated copy reads the right text, and the clipboard
    is put back twice over (after the copy, after the paste)."""
    app = TextApp(tray.desk, SENTENCE, clipboard=BEFORE)
    stale = subprocess.Popen(
        ["xclip", "-quiet", "-selection", "primary", "-i"], env=tray.desk.env,
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    tray.desk.procs.append(stale)
    try:
        app.select_all()
        assert stale.stdin is not None
        stale.stdin.write(b"words selected long ago somewhere else")
        stale.stdin.close()  # xclip now owns PRIMARY; the field keeps its selection
        time.sleep(0.5)
        assert tray.desk.run("xclip", "-selection", "primary", "-o").startswith("words")
        mark = log_size(tray.log)
        tray.desk.xdotool("key", "ctrl+alt+r")
        wait_log(tray.log, rf"selection: copy \({len(SENTENCE)} chars\)", mark)
        assert clipboard(tray.desk) == BEFORE  # restored right after the copy
        accept_when_written(tray, mark)
        replaced, _ = app.wait_text(timeout=60)
        assert replaced == tray.direct(SENTENCE, "rewrite")["text"]
        wait_log(tray.log, r"rewrite: replaced", mark)
        assert clipboard(tray.desk) == BEFORE
        assert f"<b>{BEFORE}</b>" in clipboard(tray.desk, "text/html")
    finally:
        app.close()
        stale.terminate()


def test_esc_closes_the_popup_and_stops_the_generation(tray: Tray) -> None:
    app = TextApp(tray.desk, SENTENCE, clipboard=BEFORE)
    try:
        app.select_all()
        mark = log_size(tray.log)
        daemon_mark = log_size(tray.paths.logs / "daemon.log")
        tray.desk.xdotool("key", "ctrl+alt+e")  # the essay preset's own hotkey
        wait_log(tray.log, r"hotkey pressed: rewrite:essay", mark)
        with Client.connect(tray.paths.socket) as c:  # wait until the model writes
            deadline = time.monotonic() + ANSWER_S
            while not any(r["busy"] for r in c.call("status")["runners"]):
                assert time.monotonic() < deadline, "the rewrite never started"
                time.sleep(0.1)
        time.sleep(1)  # a few tokens
        tray.desk.screenshot(ARTIFACTS / "hotkey-popup-writing.png")
        tray.desk.xdotool("key", "Escape")
        stopped = wait_log(tray.log, r"rewrite popup: cancelled after (\d+) tokens", mark)
        daemon = wait_log(tray.paths.logs / "daemon.log", r"request cancelled after (\d+) tokens",
                          daemon_mark)  # fmt: skip
        assert stopped.group(1) == daemon.group(1)  # the daemon's own count
        assert int(daemon.group(1)) < 600  # an essay of 600 words was asked for
        wait_log(tray.log, r"rewrite: cancelled after", mark)
        with Client.connect(tray.paths.socket) as c:
            assert not any(r["busy"] for r in c.call("status")["runners"])
        assert not app.changed() and app.text == SENTENCE
        assert clipboard(tray.desk) == BEFORE
    finally:
        app.close()


def test_hearth_rewrite_selection_from_a_shortcut_goes_through_the_tray(tray: Tray) -> None:
    app = TextApp(tray.desk, SENTENCE, clipboard=BEFORE)
    try:
        app.select_all()
        mark = log_size(tray.log)
        command = subprocess.Popen(
            [sys.executable, "-m", "daemon", "rewrite", "--selection", "--preset", "concise"],
            env=tray.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        wait_log(tray.log, r"tray socket: rewrite_selection", mark)
        accept_when_written(tray, mark)
        assert command.wait(60) == 0, command.communicate()
        replaced, _ = app.wait_text(timeout=60)
        assert replaced == tray.direct(SENTENCE, "concise")["text"]
        assert clipboard(tray.desk) == BEFORE
    finally:
        app.close()


def test_the_daemon_down_when_the_hotkey_fires_is_started(tray: Tray) -> None:
    """Stopped on purpose (`hearth down`): the tray does not restart it by itself, but
    a hotkey press is the user asking for it."""
    mark = log_size(tray.log)
    assert tray.hearth("down").returncode == 0
    wait_log(tray.log, r"connection: offline", mark)
    app = TextApp(tray.desk, SENTENCE, clipboard=BEFORE)
    try:
        app.select_all()
        mark = log_size(tray.log)
        tray.desk.xdotool("key", "ctrl+alt+r")
        wait_log(tray.log, r"rewrite: the daemon is down; starting it", mark)
        wait_log(tray.log, r"started the daemon", mark)
        accept_when_written(tray, mark)
        replaced, _ = app.wait_text(timeout=60)
        # the new daemon's first request (its warm-up is sent once it answers)
        assert replaced == tray.direct(SENTENCE, "rewrite", cold=True)["text"]
        assert clipboard(tray.desk) == BEFORE
    finally:
        app.close()


def test_a_daemon_that_cannot_start_is_said_so_in_the_popup(tray: Tray) -> None:
    mark = log_size(tray.log)
    assert tray.hearth("down").returncode == 0
    wait_log(tray.log, r"connection: offline", mark)
    config = tray.paths.config_file
    good = config.read_text()
    config.write_text("keep_alive = 'soon'\n")  # the daemon refuses to start with it
    app = TextApp(tray.desk, SENTENCE, clipboard=BEFORE)
    try:
        app.select_all()
        mark = log_size(tray.log)
        tray.desk.xdotool("key", "ctrl+alt+r")
        wait_log(tray.log, r"started the daemon", mark)
        wait_log(tray.log, r"rewrite popup: failed \(daemon_unavailable\)", mark, timeout=120)
        tray.desk.screenshot(ARTIFACTS / "hotkey-daemon-cannot-start.png")
        tray.desk.xdotool("key", "Escape")
        wait_log(tray.log, r"rewrite: cancelled after", mark)
        assert not app.changed() and app.text == SENTENCE
        assert clipboard(tray.desk) == BEFORE
    finally:
        app.close()
        config.write_text(good)


def test_hearth_rewrite_selection_with_no_tray_running_starts_one_and_rewrites() -> None:
    """Bound to a shortcut on a desktop where the tray is not running (nor a system tray
    host): the command starts the tray without a window, and it does the rewrite."""
    desk = start_xvfb()
    t = Tray(desk, new_home())
    app = TextApp(desk, SENTENCE, clipboard=BEFORE)
    tray_pid = None
    try:
        app.select_all()
        command = subprocess.Popen(
            [sys.executable, "-m", "daemon", "rewrite", "--selection", "--preset", "concise"],
            env=t.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        shown = wait_log(t.log, r"tray icon shown \(pid (\d+)\)", timeout=120)
        tray_pid = int(shown.group(1))
        wait_log(t.log, r"tray socket: rewrite_selection", timeout=120)
        accept_when_written(t, 0, shot="hotkey-command-popup")
        assert command.wait(60) == 0, command.communicate()
        replaced, _ = app.wait_text(timeout=60)
        # the daemon the tray started answered this first (its warm-up comes after)
        assert replaced == t.direct(SENTENCE, "concise", cold=True)["text"]
        assert clipboard(desk) == BEFORE  # served by the tray, which stays
        assert not desk.windows("Hearth")  # no chat window opened by itself
    finally:
        if tray_pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(tray_pid, signal.SIGTERM)
        t.hearth("down")
        app.close()
        desk.stop()
        shutil.rmtree(t.home, ignore_errors=True)
