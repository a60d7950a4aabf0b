"""The clipboard, for plugins granted it: the daemon reads and writes it on their behalf.

A plugin's sandbox has no display connection (no X11/Wayland socket, no D-Bus), so it
cannot touch the clipboard itself. The daemon runs in the user's session — the tray
starts it there — and uses the platform's clipboard tool: ``wl-paste``/``wl-copy`` on
Wayland, ``xclip`` or ``xsel`` on X11, ``pbpaste``/``pbcopy`` on macOS, PowerShell on
Windows. A daemon with no display (a headless box, a daemon started over ssh) has no
clipboard: the plugin gets ``not_available`` saying so, never a silent empty string.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

from daemon.errors import NotAvailable

TIMEOUT = 5.0
MAX_BYTES = 1 << 20


def _tools() -> tuple[list[str], list[str]] | None:
    """(read command, write command) for this session, or None."""
    env = os.environ
    if sys.platform == "darwin":
        return ["pbpaste"], ["pbcopy"]
    if sys.platform == "win32":
        ps = ["powershell", "-NoProfile", "-Command"]
        return [*ps, "Get-Clipboard -Raw"], [*ps, "$input | Set-Clipboard"]
    if env.get("WAYLAND_DISPLAY") and shutil.which("wl-paste") and shutil.which("wl-copy"):
        return ["wl-paste", "--no-newline"], ["wl-copy"]
    if env.get("DISPLAY"):
        if shutil.which("xclip"):
            return ["xclip", "-selection", "clipboard", "-o"], ["xclip", "-selection", "clipboard"]
        if shutil.which("xsel"):
            return ["xsel", "--clipboard", "--output"], ["xsel", "--clipboard", "--input"]
    return None


def _unavailable() -> NotAvailable:
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        why = "the daemon has no display (DISPLAY and WAYLAND_DISPLAY are unset)"
        fix = "start Hearth from your desktop session (the tray app does)"
    else:
        why = "no clipboard tool is installed"
        fix = "install xclip, xsel or wl-clipboard"
    return NotAvailable(f"there is no clipboard to use: {why}; {fix}", facility="clipboard")


def read() -> str:
    tools = _tools()
    if tools is None:
        raise _unavailable()
    try:
        done = subprocess.run(tools[0], capture_output=True, timeout=TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NotAvailable(f"the clipboard did not answer ({type(exc).__name__})") from None
    if done.returncode != 0:
        return ""  # xclip exits 1 on an empty clipboard
    return done.stdout[:MAX_BYTES].decode("utf-8", "replace")


def write(text: str) -> None:
    tools = _tools()
    if tools is None:
        raise _unavailable()
    try:
        # xclip stays up to serve the selection: don't wait for it, only for its stdin.
        proc = subprocess.Popen(
            tools[1],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        assert proc.stdin is not None
        proc.stdin.write(text.encode())
        proc.stdin.close()
        if tools[1][0] != "xclip":
            proc.wait(TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NotAvailable(f"the clipboard did not take the text ({type(exc).__name__})") from None
    # The tool takes the selection a moment after it reads the text: return once it has,
    # so whoever pastes next (or reads it back) gets the new text.
    deadline = time.monotonic() + TIMEOUT
    while read() != text:
        if time.monotonic() > deadline:
            raise NotAvailable("the clipboard did not take the text in time")
        time.sleep(0.02)
