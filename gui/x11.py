"""X11 through python-xlib: global key grabs, synthetic key presses, who holds the focus.

Qt has no API for any of this. One ``X11`` is one connection to the X server; requests
on one connection are processed in order, so a synthetic Ctrl+V sent after an ungrab on
the same connection always lands after it. Nothing here blocks for long: each call is a
round trip or two to a local server.

Why XGrabKey and not pynput's X11 listener: pynput watches keys through the RECORD
extension, which grabs nothing, so the focused application would get Ctrl+Alt+R as well,
and a combination already taken by another program could not be detected. A passive grab
gets the keys for us alone, and the server refuses it (BadAccess) when it is taken.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from Xlib import XK, X, display, error
from Xlib.ext import xtest

MODIFIER_MASKS = {"ctrl": X.ControlMask, "shift": X.ShiftMask, "alt": X.Mod1Mask,
                  "meta": X.Mod4Mask}  # fmt: skip
MODIFIER_KEYSYMS = {"ctrl": "Control_L", "shift": "Shift_L", "alt": "Alt_L", "meta": "Super_L"}
POINTER_ROOT = 1  # get_input_focus: keyboard focus follows the pointer (no window manager)


def available() -> bool:
    """Whether this session is X11 (not Wayland, where X clients see only XWayland)."""
    if os.environ.get("WAYLAND_DISPLAY") or os.environ.get("XDG_SESSION_TYPE") == "wayland":
        return False
    return bool(os.environ.get("DISPLAY"))


@dataclass(frozen=True)
class KeyEvent:
    press: bool
    keycode: int
    state: int  # modifier mask at the time


class GrabError(Exception):
    """The server refused a grab: another program has that combination."""


class X11:
    def __init__(self, name: str | None = None) -> None:
        self.display: Any = display.Display(name)
        self.root: Any = self.display.screen().root
        self.client_mask = ~int(self.display.display.info.resource_id_mask)
        self.lock_masks = self._lock_masks()

    def fileno(self) -> int:
        return int(self.display.fileno())

    def close(self) -> None:
        self.display.close()

    # -- keys ----------------------------------------------------------------------------

    def keycode(self, keysym_name: str) -> int:
        """The key that types this keysym ("r", "F5", "Return"); 0 if none does."""
        keysym = XK.string_to_keysym(keysym_name)
        if not keysym and len(keysym_name) == 1:
            keysym = ord(keysym_name)  # Latin-1 keysyms are their code points
        return int(self.display.keysym_to_keycode(keysym)) if keysym else 0

    def mask(self, modifiers: frozenset[str]) -> int:
        m = 0
        for name in modifiers:
            m |= MODIFIER_MASKS[name]
        return m

    def grab(self, keycode: int, mask: int) -> None:
        """Grab the combination on the root window, whatever Caps/Num Lock are;
        raises GrabError when another client holds it (nothing is left grabbed)."""
        catch = error.CatchError(error.BadAccess)
        for extra in self.lock_masks:
            self.root.grab_key(keycode, mask | extra, False, X.GrabModeAsync,
                               X.GrabModeAsync, onerror=catch)  # fmt: skip
        self.display.sync()
        if catch.get_error() is not None:
            self.ungrab(keycode, mask)
            raise GrabError("another program has this combination")

    def ungrab(self, keycode: int, mask: int) -> None:
        for extra in self.lock_masks:
            self.root.ungrab_key(keycode, mask | extra)
        self.display.sync()

    def events(self) -> Iterator[KeyEvent]:
        """Key events waiting on the connection (only grabbed keys come to us).
        A keyboard mapping change refreshes the keycodes python-xlib caches."""
        while self.display.pending_events():
            event = self.display.next_event()
            if event.type in (X.KeyPress, X.KeyRelease):
                yield KeyEvent(event.type == X.KeyPress, int(event.detail), int(event.state))
            elif event.type == X.MappingNotify:
                self.display.refresh_keyboard_mapping(event)
                self.lock_masks = self._lock_masks()

    def strip_locks(self, state: int) -> int:
        """The modifier state without Caps Lock and Num Lock (and pointer buttons)."""
        for extra in self.lock_masks:
            state &= ~extra
        return state & 0xFF

    def tap(self, modifiers: frozenset[str], key: str) -> None:
        """Press and release modifiers+key as if typed (XTEST), e.g. Ctrl+V."""
        codes = [self.keycode(MODIFIER_KEYSYMS[m]) for m in sorted(modifiers)]
        codes.append(self.keycode(key))
        for code in codes:
            xtest.fake_input(self.display, X.KeyPress, code)
        for code in reversed(codes):
            xtest.fake_input(self.display, X.KeyRelease, code)
        self.display.sync()

    def keys_down(self) -> bool:
        """Whether any key is held (the user's hotkey or Enter, still on its way up)."""
        return any(self.display.query_keymap())

    def keyboard_free(self) -> bool:
        """Whether no client holds the keyboard (a menu, our own popup closing, a
        window manager handling a shortcut): synthetic keys would go to it."""
        status = self.root.grab_keyboard(False, X.GrabModeAsync, X.GrabModeAsync, X.CurrentTime)
        if status == X.GrabSuccess:
            self.display.ungrab_keyboard(X.CurrentTime)
            self.display.sync()
            return True
        return False

    # -- windows and selections ----------------------------------------------------------

    def client_of(self, window: int) -> int:
        """Which client created a window (X ids carry their client's bits)."""
        return window & self.client_mask

    def focused_client(self) -> int | None:
        """The client whose window has the keyboard focus; with focus following the
        pointer (no window manager), the top-level window under the pointer."""
        focus = self.display.get_input_focus().focus
        wid = focus if isinstance(focus, int) else int(focus.id)
        if wid == POINTER_ROOT:
            child = self.root.query_pointer().child
            wid = 0 if child in (0, X.NONE) else int(child.id)
        if wid in (0, X.NONE, int(self.root.id)):
            return None
        return self.client_of(wid)

    def selection_owner_client(self, selection: str = "PRIMARY") -> int | None:
        owner = self.display.get_selection_owner(self.display.intern_atom(selection))
        wid = owner if isinstance(owner, int) else int(owner.id)
        return None if wid == X.NONE else self.client_of(wid)

    def _lock_masks(self) -> list[int]:
        """Every combination of Caps Lock and Num Lock (whichever ModN it is here)."""
        numlock = 0
        code = self.display.keysym_to_keycode(XK.string_to_keysym("Num_Lock"))
        for index, codes in enumerate(self.display.get_modifier_mapping()):
            if code and code in codes:
                numlock = 1 << index
        masks = {0, X.LockMask, numlock, X.LockMask | numlock}
        return sorted(masks)
