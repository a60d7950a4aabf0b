"""Save a screenshot of the whole X display: `python grab_screen.py OUT.png` (DISPLAY set).

A separate process with Qt's xcb platform: it grabs the root window, so the tray area,
menus and every top-level window are in the picture, as a user sees them.
"""

from __future__ import annotations

import sys

from PySide6.QtGui import QGuiApplication


def main() -> int:
    app = QGuiApplication(["grab", "-platform", "xcb"])
    screen = app.primaryScreen()
    ok = screen.grabWindow(0).save(sys.argv[1])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
