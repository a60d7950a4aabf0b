"""clipboard-cleaner, end to end: a real X clipboard (Xvfb + xclip) that the daemon
reads and writes for the plugin, and the real default model for `rewrite`."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest

from plugins.clipboard_cleaner.plugin import clean_text
from tests.daemon.pluginhost.support import PluginDaemon, plugin_daemon

DIRTY = (
    "See   https://shop.example/item?id=42&utm_source=news&utm_medium=mail&fbclid=abc  \r\n"
    "\r\n\r\n\r\nand\u00a0this  one: https://x.example/p?si=tracker&q=lisbon  "
)
CLEAN = "See https://shop.example/item?id=42\n\nand this one: https://x.example/p?q=lisbon"


def test_clean_text_strips_trackers_and_fixes_whitespace() -> None:
    assert clean_text(DIRTY) == CLEAN
    assert clean_text("https://a.example/?gclid=1") == "https://a.example/"


@pytest.fixture(scope="module")
def display() -> Iterator[str]:
    """A private X server; -displayfd lets it pick a free display itself (others run
    Xvfb on this machine too, and a shared display would mean a shared clipboard)."""
    if shutil.which("Xvfb") is None or shutil.which("xclip") is None:
        pytest.fail("Xvfb and xclip are needed: run `bash tests/system-deps.sh`")
    read, write = os.pipe()
    server = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write), "-nolisten", "tcp", "-screen", "0", "640x480x24"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        pass_fds=(write,),
    )
    os.close(write)
    with os.fdopen(read) as pipe:
        number = pipe.readline().strip()
    assert number.isdigit(), "Xvfb did not start"
    yield f":{number}"
    server.terminate()
    server.wait(10)


def _set(display: str, text: str) -> None:
    proc = subprocess.Popen(
        ["xclip", "-selection", "clipboard"],
        stdin=subprocess.PIPE,
        env={**os.environ, "DISPLAY": display},
    )
    assert proc.stdin is not None
    proc.stdin.write(text.encode())
    proc.stdin.close()
    deadline = time.monotonic() + 10
    while _get(display) != text:  # xclip takes the selection a moment later
        assert time.monotonic() < deadline, "xclip did not take the clipboard"
        time.sleep(0.05)


def _get(display: str) -> str:
    out = subprocess.run(
        ["xclip", "-selection", "clipboard", "-o"],
        capture_output=True,
        env={**os.environ, "DISPLAY": display},
        timeout=10,
    )
    return out.stdout.decode()  # bytes: no newline translation


@pytest.fixture(scope="module")
def daemon(display: str) -> Iterator[PluginDaemon]:
    with plugin_daemon(DISPLAY=display) as d:
        d.enable("clipboard-cleaner")
        yield d


def test_clean_cleans_the_real_clipboard(daemon: PluginDaemon, display: str) -> None:
    _set(display, DIRTY)
    out = daemon.hearth("plugins", "run", "clipboard-cleaner", "clean")
    assert out.returncode == 0, out.stderr
    assert out.stdout.rstrip("\n") == CLEAN
    assert _get(display) == CLEAN


def test_the_hotkey_cleans_it_too(daemon: PluginDaemon, display: str) -> None:
    listed = daemon.call("plugins.info", {"id": "clipboard-cleaner"})
    assert listed["hotkeys"] == [{"keys": "ctrl+alt+v", "description": "Clean the clipboard"}]
    _set(display, "https://a.example/?utm_campaign=x&page=2   ")
    result = daemon.call("plugins.hotkey", {"id": "clipboard-cleaner", "keys": "ctrl+alt+v"})
    assert result["result"] == "https://a.example/?page=2"
    assert _get(display) == "https://a.example/?page=2"


def test_rewrite_asks_the_model_and_keeps_the_links_clean(
    daemon: PluginDaemon, display: str
) -> None:
    _set(display, "i has went to https://b.example/?fbclid=zz   yesterday")
    out = daemon.hearth("plugins", "run", "clipboard-cleaner", "clean", "rewrite")
    assert out.returncode == 0, out.stderr
    text = _get(display)
    assert text == out.stdout.rstrip("\n") and text.strip()
    assert "fbclid" not in text and text != "i has went to https://b.example/   yesterday"


def test_without_a_display_the_plugin_is_told_there_is_no_clipboard() -> None:
    with plugin_daemon(DISPLAY="", WAYLAND_DISPLAY="") as d:
        d.enable("clipboard-cleaner")
        out = d.hearth("plugins", "run", "clipboard-cleaner", "clean")
        assert out.returncode == 2
        assert "there is no clipboard to use: the daemon has no display" in out.stderr
