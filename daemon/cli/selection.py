"""`hearth rewrite --selection`: rewrite the text selected in the focused application.

Meant to be bound to a keyboard shortcut in the desktop's settings (the way to a hotkey
on Wayland desktops without the GlobalShortcuts portal). It asks the running tray app to
do what its hotkey does, over the tray's socket (no Qt here: the CLI never loads it);
with no tray running, it starts one first (without a window) and asks it: the clipboard
restored after the paste is served by a process that stays, as with the hotkey.
"""

from __future__ import annotations

import importlib.util
import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from daemon.cli import common
from daemon.paths import Paths

# How a run ended → the command's exit status (a shortcut ignores it; scripts may not).
EXIT = {"replaced": 0, "copied": 0, "cancelled": 0, "nothing": 3, "busy": 75, "failed": 1}
WAIT_S = 3600.0  # the popup waits for the user
START_S = 60.0  # for a tray we started to listen


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


def start_tray(paths: Paths) -> None:
    """Start the tray app in the background (no window): it holds the hotkeys, and the
    clipboard it restores after a paste lives as long as it does."""
    paths.ensure()
    with open(paths.logs / "tray.out", "ab") as out:
        subprocess.Popen(
            [sys.executable, "-m", "daemon", "tray", "--hidden"],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
        )  # fmt: skip


def rewrite_selection(preset: str | None, options: dict[str, Any]) -> int:
    paths = common.paths()
    tray = paths.run / "tray.sock"
    outcome = ask_tray(tray, preset, options)
    if outcome is None:
        if importlib.util.find_spec("PySide6") is None:
            print("hearth: --selection needs Qt for Python: install it with "
                  "`pip install 'hearth-assistant[gui]'`.", file=sys.stderr)  # fmt: skip
            return 1
        start_tray(paths)
        deadline = time.monotonic() + START_S
        while outcome is None and time.monotonic() < deadline:
            time.sleep(0.1)
            outcome = ask_tray(tray, preset, options)
        if outcome is None:
            print(f"hearth: the tray app did not start; see {paths.logs / 'tray.out'}",
                  file=sys.stderr)  # fmt: skip
            return 1
    if outcome == "busy":
        print("hearth: a rewrite is already open", file=sys.stderr)
    return EXIT.get(outcome, 1)
