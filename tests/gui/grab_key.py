"""Another program holding a global hotkey: `python grab_key.py ctrl+alt+r` (DISPLAY set).

It grabs the combination on the root window, as a desktop or another tool would, says
"grabbed" on stdout, and holds it until killed.
"""

from __future__ import annotations

import signal
import sys

from Xlib import XK, X, display

MASKS = {"ctrl": X.ControlMask, "alt": X.Mod1Mask, "shift": X.ShiftMask, "super": X.Mod4Mask}


def main() -> int:
    *mods, key = sys.argv[1].split("+")
    d = display.Display()
    mask = 0
    for mod in mods:
        mask |= MASKS[mod]
    code = d.keysym_to_keycode(XK.string_to_keysym(key))
    d.screen().root.grab_key(code, mask, True, X.GrabModeAsync, X.GrabModeAsync)
    d.sync()
    print("grabbed", flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    return 0


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    sys.exit(main())
