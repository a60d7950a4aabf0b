"""Global hotkeys: a small service the tray (and later the plugin host) binds actions into.

    service = HotkeyService()
    problem = service.bind("rewrite", "Ctrl+Alt+R", open_the_popup)   # "" when it works

Key sequences are Qt's portable text ("Ctrl+Alt+R"; Ctrl is ⌘ on macOS, as everywhere in
Qt). Handlers always run in Qt's thread: backends that listen in a thread of their own
(pynput, the Wayland portal) hand their events over with a queued signal.

Backends, chosen once per session:

- X11: XGrabKey through python-xlib (gui/x11.py), read by Qt's event loop — no thread. A
  combination another program holds is refused by the server, and we say so.
- Windows and macOS: pynput (gui/hotkeys_pynput.py); macOS first needs the Accessibility
  permission, and we say how to grant it.
- Wayland: the desktop portal's GlobalShortcuts (gui/portal.py) where the desktop offers
  it; everywhere, `hearth rewrite --selection` bound as a shortcut in the desktop's own
  settings (docs: README).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from PySide6.QtCore import QObject, QSocketNotifier, Qt, Signal
from PySide6.QtGui import QKeySequence

log = logging.getLogger("hearth.tray")

DEFAULTS = {"rewrite": "Ctrl+Alt+R"}  # ⌘⌥R on macOS (Qt's Ctrl is ⌘ there)
PRESET_PREFIX = "rewrite:"  # "rewrite:concise": open the popup with that preset

_SPECIAL = {
    Qt.Key.Key_Space: "space", Qt.Key.Key_Return: "Return", Qt.Key.Key_Enter: "Return",
    Qt.Key.Key_Tab: "Tab", Qt.Key.Key_Escape: "Escape", Qt.Key.Key_Backspace: "BackSpace",
    Qt.Key.Key_Insert: "Insert", Qt.Key.Key_Delete: "Delete", Qt.Key.Key_Home: "Home",
    Qt.Key.Key_End: "End", Qt.Key.Key_PageUp: "Prior", Qt.Key.Key_PageDown: "Next",
    Qt.Key.Key_Left: "Left", Qt.Key.Key_Right: "Right", Qt.Key.Key_Up: "Up",
    Qt.Key.Key_Down: "Down", Qt.Key.Key_Pause: "Pause", Qt.Key.Key_Print: "Print",
}  # fmt: skip
_PUNCTUATION = {",": "comma", ".": "period", "/": "slash", ";": "semicolon",
                "'": "apostrophe", "[": "bracketleft", "]": "bracketright",
                "\\": "backslash", "-": "minus", "=": "equal", "`": "grave"}  # fmt: skip
_MODIFIERS = (
    (Qt.KeyboardModifier.ControlModifier, "ctrl"),
    (Qt.KeyboardModifier.AltModifier, "alt"),
    (Qt.KeyboardModifier.ShiftModifier, "shift"),
    (Qt.KeyboardModifier.MetaModifier, "meta"),
)


@dataclass(frozen=True)
class Combo:
    """One key with its modifiers; ``key`` is an X keysym name ("r", "F5", "Return"),
    which is also what the Wayland portal's shortcut triggers use."""

    modifiers: frozenset[str]
    key: str

    @classmethod
    def parse(cls, text: str) -> Combo:
        """From Qt's portable text; ValueError says what is wrong in words."""
        seq: Any = QKeySequence(text, QKeySequence.SequenceFormat.PortableText)
        if seq.count() != 1 or seq[0].key() == Qt.Key.Key_unknown:
            raise ValueError(f"{text!r} is not one key combination like Ctrl+Alt+R")
        combo = seq[0]  # a QKeyCombination
        mods = frozenset(n for m, n in _MODIFIERS if combo.keyboardModifiers() & m)
        key = _key_name(combo.key())
        if not key:
            raise ValueError(f"{text!r}: this key cannot be a global hotkey")
        if not mods - {"shift"} and not key.startswith("F"):
            raise ValueError(f"{text!r} needs Ctrl, Alt or Meta: alone it would stop typing")
        return cls(mods, key)


def _key_name(key: Qt.Key) -> str:
    value = int(key.value)
    if Qt.Key.Key_F1.value <= value <= Qt.Key.Key_F35.value:
        return f"F{value - Qt.Key.Key_F1.value + 1}"
    if key in _SPECIAL:
        return _SPECIAL[key]
    if 0x30 <= value <= 0x39 or 0x41 <= value <= 0x5A:
        return chr(value).lower()
    return _PUNCTUATION.get(chr(value), "") if value < 0x80 else ""


class Backend(Protocol):
    """Registers combinations and calls ``fire(action)`` in Qt's thread when one is
    pressed. ``add`` returns "" or why it failed, in words for people."""

    name: str

    def add(self, action: str, combo: Combo) -> str: ...

    def remove(self, action: str) -> None: ...

    def close(self) -> None: ...


class HotkeyService(QObject):
    """Action name → key sequence → handler. ``problems`` says, per action, why its
    hotkey does not work (empty when it does), for Settings and the tray's notices."""

    changed = Signal()  # bindings or their problems changed
    triggered = Signal(str)  # an action, in Qt's thread
    reported = Signal(str, str)  # action, problem: a backend's late refusal

    def __init__(self, backend: Backend | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.handlers: dict[str, Callable[[], None]] = {}
        self.sequences: dict[str, str] = {}
        self.problems: dict[str, str] = {}
        self.reported.connect(self._problem, Qt.ConnectionType.QueuedConnection)
        self.triggered.connect(self._run, Qt.ConnectionType.QueuedConnection)
        self.backend = backend if backend is not None else choose_backend(self._fire, self._report)

    def bind(self, action: str, sequence: str, handler: Callable[[], None]) -> str:
        """(Re)bind an action; "" unbinds it. Returns why it does not work, or ""."""
        self.unbind(action, quiet=True)
        self.handlers[action] = handler
        problem = ""
        if sequence.strip():
            self.sequences[action] = sequence
            try:
                problem = self.backend.add(action, Combo.parse(sequence))
            except ValueError as exc:
                problem = str(exc)
        if problem:
            self.problems[action] = problem
            log.warning("hotkey for %s not registered: %s", action, problem)
        elif sequence.strip():
            log.info("hotkey for %s registered (%s, %s)", action, sequence, self.backend.name)
        self.changed.emit()
        return problem

    def unbind(self, action: str, quiet: bool = False) -> None:
        if self.sequences.pop(action, None) is not None:
            self.backend.remove(action)
        self.problems.pop(action, None)
        self.handlers.pop(action, None)
        if not quiet:
            self.changed.emit()

    def close(self) -> None:
        for action in list(self.sequences):
            self.unbind(action, quiet=True)
        self.backend.close()

    def _fire(self, action: str) -> None:
        """Called by backends, from any thread: the handler runs in Qt's."""
        self.triggered.emit(action)

    def _report(self, action: str, problem: str) -> None:
        """Called by backends, from any thread, when a binding fails after the fact."""
        self.reported.emit(action, problem)

    def _problem(self, action: str, problem: str) -> None:
        if action in self.sequences:
            log.warning("hotkey for %s not registered: %s", action, problem)
            self.problems[action] = problem
            self.changed.emit()

    def _run(self, action: str) -> None:
        handler = self.handlers.get(action)
        if handler is not None and action in self.sequences:
            log.info("hotkey pressed: %s", action)
            handler()


class NoBackend:
    """Where no backend works: every hotkey reports why, and what to do instead."""

    def __init__(self, why: str) -> None:
        self.name = "none"
        self.why = why

    def add(self, action: str, combo: Combo) -> str:
        return self.why

    def remove(self, action: str) -> None:
        pass

    def close(self) -> None:
        pass


class X11Backend:
    """Passive grabs on the root window, fired when the key comes back up (by then the
    grab it activated is over, so the popup can take the keyboard)."""

    name = "x11"

    def __init__(self, fire: Callable[[str], None]) -> None:
        from gui.x11 import X11

        self.x = X11()
        self.fire = fire
        self.grabs: dict[str, tuple[int, int]] = {}  # action -> (keycode, mask)
        self.down: str | None = None  # the action whose key is held
        self.notifier = QSocketNotifier(self.x.fileno(), QSocketNotifier.Type.Read)
        self.notifier.activated.connect(lambda *_: self.pump())

    def add(self, action: str, combo: Combo) -> str:
        from gui.x11 import GrabError

        keycode = self.x.keycode(combo.key)
        if not keycode:
            return f"no key on this keyboard types {combo.key!r}"
        mask = self.x.mask(combo.modifiers)
        if (keycode, mask) in self.grabs.values():
            return "another Hearth action uses this combination"
        try:
            self.x.grab(keycode, mask)
        except GrabError:
            return (
                "another program already uses this combination: choose another one in "
                "Settings ▸ Hotkeys, or free it in that program"
            )
        finally:
            self.pump()
        self.grabs[action] = (keycode, mask)
        return ""

    def remove(self, action: str) -> None:
        grab = self.grabs.pop(action, None)
        if grab is not None:
            self.x.ungrab(*grab)
            self.pump()

    def close(self) -> None:
        self.notifier.setEnabled(False)
        for action in list(self.grabs):
            self.remove(action)
        self.x.close()

    def pump(self) -> None:
        for event in self.x.events():
            state = self.x.strip_locks(event.state)
            for action, (keycode, mask) in self.grabs.items():
                if event.keycode != keycode:
                    continue
                if event.press and state == mask:
                    self.down = action
                elif not event.press and self.down == action:
                    self.down = None
                    self.fire(action)


def choose_backend(fire: Callable[[str], None], report: Callable[[str, str], None]) -> Backend:
    from gui import x11

    if sys.platform in ("win32", "darwin"):
        from gui.hotkeys_pynput import PynputBackend

        return PynputBackend(fire)
    if x11.available():
        try:
            return X11Backend(fire)
        except Exception as exc:  # no server, refused connection: say it, keep running
            log.warning("no X11 hotkeys: %s", exc)
            return NoBackend(f"cannot reach the X server ({exc})")
    from gui.portal import PortalBackend, portal_problem

    problem = portal_problem()
    if not problem:
        return PortalBackend(fire, report)
    return NoBackend(
        f"{problem}. Bind `hearth rewrite --selection` to a shortcut in your desktop's "
        "keyboard settings instead (see Hearth's README)."
    )
