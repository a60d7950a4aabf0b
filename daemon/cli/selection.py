"""`hearth rewrite --selection`: rewrite the text selected in the focused application.

Meant to be bound to a keyboard shortcut in the desktop's settings (the way to a hotkey
on Wayland desktops without the GlobalShortcuts portal). It asks the running tray app to
do what its hotkey does, over the tray's socket (no Qt here: the CLI never loads it);
with no tray running, it opens the same popup in a process of its own.
"""

from __future__ import annotations

import importlib.util
import json
import socket
import sys
from pathlib import Path
from typing import Any

from daemon.cli import common

# How a run ended → the command's exit status (a shortcut ignores it; scripts may not).
EXIT = {"replaced": 0, "copied": 0, "cancelled": 0, "nothing": 3, "busy": 75, "failed": 1}
WAIT_S = 3600.0  # the popup waits for the user


def ask_tray(path: Path, preset: str | None, options: dict[str, Any]) -> str | None:
    """The run's outcome from the tray, or None when no tray listens."""
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    except (AttributeError, OSError):  # no Unix sockets (Windows): no tray to ask
        return None
    with sock:
        try:
            sock.connect(str(path))
        except OSError:
            return None
        request = {"command": "rewrite_selection", "preset": preset, "options": options}
        sock.sendall(json.dumps(request).encode() + b"\n")
        sock.settimeout(WAIT_S)
        data = b""
        while b"\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                return "failed"  # the tray quit meanwhile
            data += chunk
    answer = json.loads(data.split(b"\n", 1)[0])
    if "error" in answer:
        print(f"hearth: the tray refused: {answer['error']}", file=sys.stderr)
        return "failed"
    return str(answer.get("result", "failed"))


def rewrite_selection(preset: str | None, options: dict[str, Any]) -> int:
    outcome = ask_tray(common.paths().run / "tray.sock", preset, options)
    if outcome is None:
        if importlib.util.find_spec("PySide6") is None:
            print("hearth: --selection needs Qt for Python: install it with "
                  "`pip install 'hearth-assistant[gui]'`.", file=sys.stderr)  # fmt: skip
            return 1
        from gui.rewriter import run_once  # Qt loads here, only for this command

        outcome = run_once(preset, options)
    if outcome == "busy":
        print("hearth: a rewrite is already open", file=sys.stderr)
    return EXIT.get(outcome, 1)
