"""Global hotkeys on Windows and macOS through pynput.

pynput's listener runs in a thread of its own; it only calls ``fire``, which hands the
action to Qt's thread with a queued signal (gui/hotkeys.py). On macOS the listener
receives nothing until the user grants Hearth the Accessibility permission: we check it
first (AXIsProcessTrusted) and say where to grant it, rather than fail silently.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys
from collections.abc import Callable
from typing import Any

from gui.hotkeys import Combo

log = logging.getLogger("hearth.tray")

_PYNPUT_MODIFIERS = {"ctrl": "<ctrl>", "alt": "<alt>", "shift": "<shift>", "meta": "<cmd>"}
_PYNPUT_KEYS = {"Return": "enter", "Escape": "esc", "BackSpace": "backspace",
                "Prior": "page_up", "Next": "page_down", "Print": "print_screen"}  # fmt: skip
_PUNCTUATION = {"comma": ",", "period": ".", "slash": "/", "semicolon": ";", "apostrophe": "'",
                "bracketleft": "[", "bracketright": "]", "backslash": "\\", "minus": "-",
                "equal": "=", "grave": "`"}  # fmt: skip
MACOS_PERMISSION = (
    "Hearth needs the Accessibility permission to see its hotkeys: open System Settings ▸ "
    "Privacy & Security ▸ Accessibility, switch Hearth (or the terminal that started it) "
    "on, then quit and reopen Hearth."
)


def pynput_hotkey(combo: Combo, platform: str = sys.platform) -> str:
    """ "<ctrl>+<alt>+r". Qt's Ctrl is ⌘ and its Meta is Control on macOS."""
    mods = dict(_PYNPUT_MODIFIERS)
    if platform == "darwin":
        mods.update(ctrl="<cmd>", meta="<ctrl>")
    parts = [mods[m] for m in ("ctrl", "alt", "shift", "meta") if m in combo.modifiers]
    key = combo.key
    if key in _PUNCTUATION:
        parts.append(_PUNCTUATION[key])
    elif len(key) == 1:
        parts.append(key)
    else:
        parts.append(f"<{_PYNPUT_KEYS.get(key, key.lower())}>")
    return "+".join(parts)


def accessibility_granted() -> bool:
    """macOS: whether this process may watch the keyboard (always True elsewhere)."""
    if sys.platform != "darwin":
        return True
    path = ctypes.util.find_library("ApplicationServices")
    if path is None:
        return True  # cannot tell: let pynput try
    services = ctypes.cdll.LoadLibrary(path)
    services.AXIsProcessTrusted.restype = ctypes.c_bool
    return bool(services.AXIsProcessTrusted())


# Shift, Control, Option, Command in CGEventFlags; Shift, Ctrl, Alt, left and right Windows
# as virtual-key codes.
_MAC_MODIFIERS = 0x20000 | 0x40000 | 0x80000 | 0x100000
_WIN_MODIFIERS = (0x10, 0x11, 0x12, 0x5B, 0x5C)


def modifiers_held(platform: str = sys.platform) -> bool:
    """Whether the user still holds a modifier, as right after pressing ⌘⌥R: a simulated
    ⌘C then reaches the app as ⌘⌥C and copies nothing. False where we cannot tell."""
    try:
        if platform == "darwin":
            path = ctypes.util.find_library("ApplicationServices")
            if path is None:
                return False
            quartz = ctypes.cdll.LoadLibrary(path)
            quartz.CGEventSourceFlagsState.restype = ctypes.c_uint64
            quartz.CGEventSourceFlagsState.argtypes = [ctypes.c_int32]
            hid_state = 1  # kCGEventSourceStateHIDSystemState: the keys as they are now
            return bool(quartz.CGEventSourceFlagsState(hid_state) & _MAC_MODIFIERS)
        if platform == "win32":
            user32 = getattr(ctypes, "windll").user32  # noqa: B009 (Windows only)
            return any(user32.GetAsyncKeyState(vk) & 0x8000 for vk in _WIN_MODIFIERS)
    except (OSError, AttributeError) as exc:
        log.debug("cannot tell which keys are held: %s", exc)
    return False


class PynputBackend:
    """One pynput GlobalHotKeys listener for all actions, restarted when they change
    (pynput cannot add a hotkey to a running listener)."""

    name = "pynput"

    def __init__(self, fire: Callable[[str], None]) -> None:
        self.fire = fire
        self.combos: dict[str, str] = {}  # action -> pynput hotkey text
        self.listener: Any = None

    def add(self, action: str, combo: Combo) -> str:
        if not accessibility_granted():
            return MACOS_PERMISSION
        hotkey = pynput_hotkey(combo)
        if hotkey in self.combos.values():
            return "another Hearth action uses this combination"
        self.combos[action] = hotkey
        try:
            self._restart()
        except Exception as exc:  # pynput refused it: say so, keep the others
            del self.combos[action]
            self._restart()
            return f"cannot listen for it ({exc})"
        return ""

    def remove(self, action: str) -> None:
        if self.combos.pop(action, None) is not None:
            self._restart()

    def close(self) -> None:
        self.combos.clear()
        self._restart()

    def _restart(self) -> None:
        from pynput.keyboard import GlobalHotKeys

        if self.listener is not None:
            self.listener.stop()
            self.listener = None
        if self.combos:
            hotkeys = {h: (lambda a=a: self.fire(a)) for a, h in self.combos.items()}
            self.listener = GlobalHotKeys(hotkeys)
            self.listener.daemon = True
            self.listener.start()
