"""`hearth tray`: the tray icon and chat window (the gui package, imported only here)."""

from __future__ import annotations

import argparse
import importlib.util
import sys


def cmd_tray(args: argparse.Namespace) -> int:
    if importlib.util.find_spec("PySide6") is None:
        print(
            "hearth: the tray app needs Qt for Python. Install it with "
            "`pip install 'hearth-assistant[gui]'` (or `make setup`), then run `hearth tray`.",
            file=sys.stderr,
        )
        return 1
    from gui.app import main  # Qt is loaded here and only here: the daemon never imports it

    return main(autostart=not args.no_start, window_without_tray=not args.hidden)


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "tray",
        help="the tray icon and chat window (starts the daemon when none runs)",
        description="Hearth's desktop app: a tray icon with a menu, the chat window, "
        "settings and the privacy panel. Closing a window keeps Hearth in the tray; "
        "Quit is in the tray menu.",
    )
    p.add_argument(
        "--no-start", action="store_true", help="never start the daemon; wait for one to answer"
    )
    p.add_argument(
        "--hidden", action="store_true",
        help="open no window, even on a desktop with no system tray (hotkeys only; "
        "what `hearth rewrite --selection` starts)",
    )  # fmt: skip
    p.set_defaults(func=cmd_tray)
