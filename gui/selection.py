"""Reading the text selected in another application, and replacing it with one paste.

Capture: the PRIMARY selection first where there is one (X11, Wayland): no keystrokes,
nothing touched. On X11 it counts only when the application with the keyboard focus owns
it (a selection made earlier in another window would be the wrong text). Otherwise the
clipboard is saved (every format), a copy is simulated, the text read, and the clipboard
put back.

Replace: the text goes on the clipboard, a paste is simulated (one paste: the app's own
Ctrl+Z undoes it), and the clipboard is restored once the application has read it. On X11
a paste is served on request — the target asks us for the data when it handles Ctrl+V —
so restoring too early would paste the old clipboard. ``ServedMimeData`` tells when it
was read: Qt asks it for the data to answer each request.

Everything is driven by Qt's event loop (short polls with deadlines), never a sleep.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any, Protocol

from PySide6.QtCore import QMetaType, QMimeData, QObject, QTimer, Signal
from PySide6.QtGui import QClipboard, QGuiApplication

log = logging.getLogger("hearth.tray")

POLL_MS = 15
KEYS_UP_MS = 2000  # how long we wait for the user to let go of the hotkey's keys
COPY_MS = 1500  # an application that copies nothing in this time had nothing selected
SERVE_MS = 4000  # an application that has not read the paste by then did not paste
QUIET_MS = 150  # after the first read, other formats may follow: restore once they stop


class Keys(Protocol):
    """Synthetic keystrokes into the application that has the keyboard focus."""

    def ready(self) -> bool:
        """No key is held and nobody holds the keyboard: a keystroke goes where it should."""
        ...

    def copy(self) -> None: ...

    def paste(self) -> None: ...


class X11Keys:
    """Ctrl+C / Ctrl+V through XTEST on a connection of our own (gui/x11.py)."""

    def __init__(self) -> None:
        from gui.x11 import X11

        self.x = X11()

    def ready(self) -> bool:
        return not self.x.keys_down() and self.x.keyboard_free()

    def copy(self) -> None:
        self.x.tap(frozenset({"ctrl"}), "c")

    def paste(self) -> None:
        self.x.tap(frozenset({"ctrl"}), "v")

    def primary_trusted(self) -> bool:
        """The PRIMARY selection belongs to the focused application (see module doc)."""
        owner, focused = self.x.selection_owner_client(), self.x.focused_client()
        return owner is not None and (focused is None or owner == focused)


class PynputKeys:
    """Windows and macOS (⌘C / ⌘V there)."""

    def __init__(self) -> None:
        from pynput.keyboard import Controller, Key

        self.controller = Controller()
        self.modifier = Key.cmd if sys.platform == "darwin" else Key.ctrl

    def ready(self) -> bool:
        """pynput fires on the hotkey's press: wait for its modifiers to be let go."""
        from gui.hotkeys_pynput import modifiers_held

        return not modifiers_held()

    def _tap(self, char: str) -> None:
        with self.controller.pressed(self.modifier):
            self.controller.tap(char)

    def copy(self) -> None:
        self._tap("c")

    def paste(self) -> None:
        self._tap("v")


class WtypeKeys:
    """Wayland, where the compositor lets `wtype` type (wlroots-based ones, KDE)."""

    def ready(self) -> bool:
        return True

    def copy(self) -> None:
        subprocess.run(["wtype", "-M", "ctrl", "c", "-m", "ctrl"], timeout=5, check=False)

    def paste(self) -> None:
        subprocess.run(["wtype", "-M", "ctrl", "v", "-m", "ctrl"], timeout=5, check=False)


def platform_keys() -> Keys | None:
    """What can type here; None where nothing can (Wayland without wtype): the user
    then pastes with Ctrl+V themselves."""
    from gui import x11

    try:
        if sys.platform in ("win32", "darwin"):
            return PynputKeys()
        if x11.available():
            return X11Keys()
        if os.environ.get("WAYLAND_DISPLAY") and shutil.which("wtype"):
            return WtypeKeys()
    except Exception as exc:  # no X server, no permission: say it, go on without
        log.warning("cannot simulate keystrokes: %s", exc)
    return None


# -- the clipboard -----------------------------------------------------------------------


Snapshot = dict[str, bytes]


def snapshot(clipboard: QClipboard) -> Snapshot:
    """Every format on the clipboard (text, HTML, images, files…), to put back later.
    X11's protocol targets (TARGETS, TIMESTAMP…) are not data and are left out."""
    data = clipboard.mimeData()
    if data is None:
        return {}
    return {f: bytes(data.data(f).data()) for f in data.formats() if "/" in f}


def restore(clipboard: QClipboard, saved: Snapshot) -> None:
    if not saved:
        clipboard.clear()
        return
    data = QMimeData()
    for fmt, value in saved.items():
        data.setData(fmt, value)
    clipboard.setMimeData(data)


class ServedMimeData(QMimeData):
    """The text to paste; ``served`` is emitted each time an application reads it."""

    served = Signal()

    def __init__(self, text: str) -> None:
        super().__init__()
        self.setText(text)

    def retrieveData(self, mimetype: str, preferredType: QMetaType | QMetaType.Type) -> Any:
        self.served.emit()
        return super().retrieveData(mimetype, preferredType)


def poll(until: Callable[[], bool], timeout_ms: int, then: Callable[[bool], None]) -> QTimer:
    """Call ``then(True)`` once ``until()`` holds, or ``then(False)`` at the deadline."""
    deadline = time.monotonic() + timeout_ms / 1000
    timer = QTimer()
    timer.setInterval(POLL_MS)

    def check() -> None:
        ok = until()
        if ok or time.monotonic() >= deadline:
            timer.stop()
            then(ok)

    timer.timeout.connect(check)
    timer.start()
    QTimer.singleShot(0, check)
    return timer


class Selection(QObject):
    """One capture and, later, one replacement. ``captured`` carries the text ("" when
    nothing was selected) and how it was read; ``replaced`` whether the paste happened
    and the clipboard was put back."""

    captured = Signal(str, str)  # text, "primary" | "copy" | "none"
    replaced = Signal(bool, str)  # pasted, what happened in words ("" when all went well)

    def __init__(self, keys: Keys | None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.keys = keys
        self.clipboard = QGuiApplication.clipboard()
        self.saved: Snapshot | None = None
        self.timer: QTimer | None = None
        self.timings: dict[str, float] = {}

    # -- capture -------------------------------------------------------------------------

    def capture(self, primary_first: bool = True) -> None:
        start = time.monotonic()
        if primary_first and self.clipboard.supportsSelection() and self._primary_trusted():
            text = self.clipboard.text(QClipboard.Mode.Selection)
            if text.strip():
                self._captured(text, "primary", start)
                return
        if self.keys is None:
            self._captured("", "none", start)
            return
        self.timer = poll(self.keys.ready, KEYS_UP_MS, lambda _: self._copy(start))

    def _primary_trusted(self) -> bool:
        trusted = getattr(self.keys, "primary_trusted", None)
        return bool(trusted()) if callable(trusted) else True

    def _copy(self, start: float) -> None:
        assert self.keys is not None
        self.saved = snapshot(self.clipboard)
        self.clipboard.setMimeData(QMimeData())  # ours, and empty: a copy takes it over
        self.keys.copy()

        def copied(ok: bool) -> None:
            text = self.clipboard.text() if ok else ""
            restore(self.clipboard, self.saved or {})
            self._captured(text, "copy" if text.strip() else "none", start)

        self.timer = poll(lambda: not self.clipboard.ownsClipboard(), COPY_MS, copied)

    def _captured(self, text: str, how: str, start: float) -> None:
        self.timings["capture"] = time.monotonic() - start
        log.info("selection: %s (%d chars) in %.0f ms", how, len(text),
                 self.timings["capture"] * 1000)  # fmt: skip
        self.captured.emit(text, how)

    def save_clipboard(self) -> None:
        """Keep what the clipboard holds now, for after the paste (a capture through
        the PRIMARY selection did not need to)."""
        if self.saved is None:
            self.saved = snapshot(self.clipboard)

    # -- replace -------------------------------------------------------------------------

    def replace(self, text: str) -> None:
        """Paste ``text`` over the selection, then put the clipboard back."""
        start = time.monotonic()
        self.save_clipboard()
        if self.keys is None:
            self.clipboard.setText(text)
            self.replaced.emit(False, "The rewrite is on the clipboard: press Ctrl+V to paste it.")
            return
        keys = self.keys
        self.timer = poll(keys.ready, KEYS_UP_MS, lambda _: self._paste(keys, text, start))

    def _paste(self, keys: Keys, text: str, start: float) -> None:
        data = ServedMimeData(text)  # Qt owns it once set: only our counters are read later
        reads, last = [0], [0.0]

        def served() -> None:
            if not reads[0]:
                self.timings["paste"] = time.monotonic() - start  # the app has the text
            reads[0] += 1
            last[0] = time.monotonic()

        data.served.connect(served)
        self.clipboard.setMimeData(data)
        keys.paste()

        def settled() -> bool:
            if not self.clipboard.ownsClipboard():
                return True  # someone copied meanwhile: theirs now, leave it
            return bool(last[0]) and time.monotonic() - last[0] >= QUIET_MS / 1000

        def done(ok: bool) -> None:
            self.timings["restore"] = time.monotonic() - start
            if not reads[0]:
                log.warning("paste: the application did not read it")
                self.replaced.emit(
                    False,
                    "The application did not take the paste. The rewrite is on the "
                    "clipboard: press Ctrl+V to paste it.",
                )
                return
            if self.clipboard.ownsClipboard():
                restore(self.clipboard, self.saved or {})
            log.info("paste: read %d time(s); clipboard restored after %.0f ms", reads[0],
                     self.timings["restore"] * 1000)  # fmt: skip
            self.replaced.emit(True, "")

        self.timer = poll(settled, SERVE_MS, done)
