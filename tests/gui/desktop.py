"""A real X desktop for the tray tests: Xvfb, the trayer tray host, screenshots, xdotool."""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtGui import QColor, QImage

HERE = Path(__file__).resolve().parent
FLAME = (QColor("#E8642C"), QColor("#FFC24B"), QColor("#FF4F1F"))  # gui/icons.py's colours


@dataclass
class Desktop:
    display: str
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "QT_QPA_PLATFORM"}
        env["DISPLAY"] = self.display
        env.pop("WAYLAND_DISPLAY", None)
        return env

    def run(self, *args: str, timeout: float = 30) -> str:
        done = subprocess.run(
            args, env=self.env, capture_output=True, text=True, timeout=timeout, check=True
        )
        return done.stdout

    def xdotool(self, *args: str) -> str:
        return self.run("xdotool", *args)

    def screenshot(self, path: Path) -> QImage:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.run(sys.executable, str(HERE / "grab_screen.py"), str(path), timeout=60)
        image = QImage(str(path))
        assert not image.isNull(), f"no screenshot at {path}"
        return image

    def tray_available(self) -> bool:
        code = (
            "from PySide6.QtWidgets import QApplication, QSystemTrayIcon as T;"
            "a = QApplication(['p', '-platform', 'xcb']);"
            "raise SystemExit(0 if T.isSystemTrayAvailable() else 1)"
        )
        done = subprocess.run([sys.executable, "-c", code], env=self.env, capture_output=True)
        return done.returncode == 0

    def windows(self, name: str) -> list[tuple[int, int, int, int]]:
        """(x, y, width, height) of the visible windows called ``name``."""
        try:
            ids = self.xdotool("search", "--onlyvisible", "--name", f"^{name}$").split()
        except subprocess.CalledProcessError:
            return []
        found = []
        for wid in ids:
            shell = self.xdotool("getwindowgeometry", "--shell", wid)
            g = dict(line.split("=", 1) for line in shell.split())
            found.append((int(g["X"]), int(g["Y"]), int(g["WIDTH"]), int(g["HEIGHT"])))
        return found

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def start_xvfb() -> Desktop:
    """Xvfb on a free display (it picks one: -displayfd), nothing else on it."""
    for tool in ("Xvfb", "trayer", "xdotool", "xclip"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: run `bash tests/system-deps.sh` first")
    read, write = os.pipe()
    xvfb = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write), "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
        pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    os.close(write)
    with os.fdopen(read) as pipe:
        number = pipe.readline().strip()
    if not number:
        xvfb.kill()
        pytest.fail("Xvfb did not start")
    return Desktop(f":{number}", [xvfb])


def start_desktop() -> Desktop:
    """Xvfb and trayer along the bottom."""
    desk = start_xvfb()
    trayer = subprocess.Popen(
        ["trayer", "--edge", "bottom", "--align", "right", "--widthtype", "request",
         "--height", "32", "--transparent", "false", "--tint", "0x2b2b2b", "--expand", "true",
         "--SetDockType", "true"],
        env=desk.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    desk.procs.append(trayer)
    deadline = time.monotonic() + 60
    while not desk.tray_available():
        if time.monotonic() > deadline or trayer.poll() is not None:
            desk.stop()
            pytest.fail("trayer did not become the system tray")
        time.sleep(0.2)
    return desk


def flame_pixels(image: QImage, x0: int, y0: int, x1: int, y1: int) -> list[tuple[int, int]]:
    """Where, in the box, the icon's flame colours are (within a small tolerance)."""
    found = []
    for y in range(max(0, y0), min(image.height(), y1)):
        for x in range(max(0, x0), min(image.width(), x1)):
            c = image.pixelColor(x, y)
            if any(
                abs(c.red() - f.red()) + abs(c.green() - f.green()) + abs(c.blue() - f.blue()) < 40
                for f in FLAME
            ):
                found.append((x, y))
    return found


def wait_log(log: Path, pattern: str, after: int = 0, timeout: float = 60) -> re.Match[str]:
    """The first line matching ``pattern`` past byte ``after`` of the tray's log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text() if log.exists() else ""
        found = re.search(pattern, text[after:])
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"{pattern!r} not in the tray's log:\n{text[after:][-3000:]}")


def log_size(log: Path) -> int:
    return log.stat().st_size if log.exists() else 0


class TextApp:
    """tests/gui/text_app.py running on the desktop: "any application" with a text field."""

    def __init__(self, desk: Desktop, text: str, clipboard: str | None = None) -> None:
        args = [sys.executable, str(HERE / "text_app.py"), text]
        if clipboard is not None:
            args += ["--clipboard", clipboard]
        self.desk = desk
        self.proc = subprocess.Popen(args, env=desk.env, stdout=subprocess.PIPE, text=True)
        desk.procs.append(self.proc)
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        ready = self.next_event(60)
        assert ready["event"] == "ready", ready
        self.text = ready["text"]
        deadline = time.monotonic() + 30
        while not desk.windows("Hearth test field"):
            assert time.monotonic() < deadline, "the text field did not show"
            time.sleep(0.1)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.events.put(json.loads(line))

    def next_event(self, timeout: float) -> dict[str, Any]:
        try:
            return self.events.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"the text app said nothing in {timeout} s") from None

    def wait_text(self, timeout: float = 60) -> tuple[str, float]:
        """The field's text after its next change, and when it changed (monotonic)."""
        event = self.next_event(timeout)
        while not self.events.empty():  # a paste may be a removal then an insertion
            event = self.events.get()
        self.text = event["text"]
        return self.text, float(event["t"])

    def changed(self) -> bool:
        return not self.events.empty()

    def point(self, x: int = 300, y: int = 180) -> None:
        """The pointer over the field: with no window manager, X gives the keyboard to
        the window under the pointer."""
        self.desk.xdotool("mousemove", str(x), str(y))

    def select_all(self) -> None:
        self.point()
        self.desk.xdotool("click", "1")
        self.desk.xdotool("key", "ctrl+a")

    def window(self) -> str:
        """Its top-level window's X id."""
        return self.desk.xdotool(
            "search", "--pid", str(self.proc.pid), "--name", "^Hearth test field$"
        ).split()[-1]

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def clipboard(desk: Desktop, target: str = "UTF8_STRING") -> str:
    """What another application reads from the clipboard (xclip, a client of its own)."""
    return desk.run("xclip", "-selection", "clipboard", "-o", "-t", target, timeout=20)
