"""Hotkey → the selected text → the rewrite popup → one paste over the selection.

``SelectionRewriter`` runs one rewrite at a time, for the tray's hotkeys and for
`hearth rewrite --selection` (through the tray, or on its own when no tray runs). Where
the daemon is down it is started (the user asked for something only it can do), and if
it cannot start the popup says so.

Timings (capture, first words, generation, paste) go to the tray's log for
bench/hotkey.py; the text itself never does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QGuiApplication

from daemon.presets import BUILTIN
from gui.connection import DaemonConnection, State
from gui.rewrite_popup import RewritePopup
from gui.selection import Keys, Selection

log = logging.getLogger("hearth.tray")

DEFAULT_PRESET = "rewrite"
# Greedy: a rewrite is not creative writing, and the same text should give the same
# rewrite each time (switching presets back and forth shows the same results).
OPTIONS: dict[str, Any] = {"temperature": 0}
Notify = Callable[[str, str, bool], None]  # title, text, is_error
FOCUS_MS = 250  # Wayland: for the compositor to give the popup the focus (and selection)


class SelectionRewriter(QObject):
    """``finished`` says how a run ended: replaced, copied, cancelled, nothing, failed."""

    finished = Signal(str)
    popup_shown = Signal(object)  # the RewritePopup (tests look at it)

    def __init__(
        self, connection: DaemonConnection, keys: Keys | None, notify: Notify,
        parent: QObject | None = None,
    ) -> None:  # fmt: skip
        super().__init__(parent)
        self.conn = connection
        self.keys = keys
        self.notify = notify
        self.presets: list[dict[str, Any]] = [
            {"name": n, "instruction": i} for n, i in BUILTIN.items()
        ]  # until the daemon says (users' own presets come from it)
        self.last_preset = DEFAULT_PRESET
        self.asked_preset: str | None = None
        self.options = dict(OPTIONS)
        self.popup: RewritePopup | None = None
        self.selection: Selection | None = None
        self.pressed_at = 0.0
        self.timings: dict[str, float] = {}
        self.conn.connected.connect(lambda _: self.refresh_presets())

    @property
    def busy(self) -> bool:
        return self.selection is not None

    def refresh_presets(self) -> None:
        reply = self.conn.call("rewrite.presets")
        reply.finished.connect(lambda r: self.set_presets(r.get("presets", [])))

    def set_presets(self, presets: list[dict[str, Any]]) -> None:
        if presets:
            self.presets = presets

    def routed_remote(self, name: str) -> bool:
        """The user's preset answered by their remote model (``route = "remote"``)."""
        return any(p["name"] == name and p.get("route") == "remote" for p in self.presets)

    def warm(self, preset: str | None = None) -> None:
        """Load the model and put the preset's prompt in its KV cache: a one-token
        rewrite of a tiny text (the instruction leads the prompt, so it is the prefix
        the next rewrite reuses), at background priority. Never starts a daemon."""
        if self.conn.state is not State.CONNECTED:
            return
        name = preset or self.last_preset
        if self.routed_remote(name):  # nothing to warm here, and no call out unasked
            name = DEFAULT_PRESET
        options = {**self.options, "max_tokens": 1, "priority": "background"}
        reply = self.conn.call("rewrite", {"text": "Hi.", "preset": name, "options": options})
        reply.finished.connect(lambda r: log.info("rewrite: warmed %s (%s)", name, r.get("model")))
        reply.failed.connect(lambda e: log.info("rewrite: warm-up failed (%s)", e.kind))

    # -- one run -------------------------------------------------------------------------

    def trigger(self, preset: str | None = None, options: dict[str, Any] | None = None) -> None:
        """The hotkey was pressed (or the command run): capture, then the popup."""
        if self.busy:
            if self.popup is not None:
                self.popup.raise_()
            log.info("rewrite: one is already open")
            return
        self.pressed_at = time.monotonic()
        self.timings = {}
        log.info("rewrite: triggered (monotonic %.3f)", self.pressed_at)  # bench/hotkey.py
        if self.conn.state is State.OFFLINE:
            log.info("rewrite: the daemon is down; starting it")
            self.conn.start_daemon()
        chosen = preset or self.last_preset
        self.asked_preset = preset  # a preset named by the action or command, or None
        run_options = {**self.options, **(options or {})}
        selection = self.selection = Selection(self.keys, self)
        selection.captured.connect(lambda text, how: self._captured(text, chosen, run_options))
        if QGuiApplication.platformName() == "wayland":
            # a Wayland client is sent the selection only while it has the keyboard focus:
            # the popup opens first, and the selection is read once it is focused
            self._open("", chosen, run_options, start=False)
            QTimer.singleShot(FOCUS_MS, lambda: self._capture_if_open(selection))
        else:
            selection.capture()

    def _capture_if_open(self, selection: Selection) -> None:
        if self.selection is selection:  # not cancelled meanwhile
            selection.capture()

    def _captured(self, text: str, preset: str, options: dict[str, Any]) -> None:
        if self.selection is None:  # cancelled meanwhile (Wayland: the popup was open)
            return
        self.timings["capture"] = self.selection.timings.get("capture", 0.0)
        if not text.strip():
            self.notify("Nothing selected", "Select some text first, then press the hotkey.", False)
            if self.popup is not None:
                self.popup.dismissed.disconnect()
                self.popup.cancel()
            self._end("nothing")
            return
        if self.popup is not None:  # opened first (Wayland)
            self.popup.begin(text)
            return
        if preset not in (p["name"] for p in self.presets):
            # a preset of the user's own that we have not heard of yet: ask the daemon
            reply = self.conn.call("rewrite.presets")
            reply.finished.connect(lambda r: self._known(r.get("presets", []), text, preset,
                                                         options))  # fmt: skip
            reply.failed.connect(lambda _: self._open(text, preset, options))
            return
        self._open(text, preset, options)

    def _known(
        self, presets: list[dict[str, Any]], text: str, preset: str, options: dict[str, Any]
    ) -> None:
        self.set_presets(presets)
        if preset not in (p["name"] for p in self.presets):
            names = ", ".join(p["name"] for p in self.presets)
            self.notify("Unknown preset", f"No preset is named {preset!r}: {names}.", True)
            self._end("failed")
            return
        self._open(text, preset, options)

    def _open(self, text: str, preset: str, options: dict[str, Any], start: bool = True) -> None:
        assert self.selection is not None
        popup = RewritePopup(self.conn, text, self.presets, preset, options, start=start)
        if self.conn.state is not State.CONNECTED:
            popup.status.setText("Starting Hearth's background service…")
        popup.accepted.connect(self._accepted)
        popup.copied.connect(lambda _: self._end("copied"))
        popup.dismissed.connect(lambda: self._end("cancelled"))
        popup.finished_generating.connect(self._generated)
        self.popup = popup
        popup.place()
        popup.show()
        popup.raise_()
        popup.activateWindow()
        popup.setFocus()
        log.info("rewrite: popup shown after %.0f ms", (time.monotonic() - self.pressed_at) * 1000)
        self.popup_shown.emit(popup)
        # the clipboard is saved for after the paste while the model writes
        QTimer.singleShot(0, self.selection.save_clipboard)

    def _generated(self, result: dict[str, Any]) -> None:
        popup = self.popup
        if popup is None:
            return
        timings = result.get("timings") or {}
        if popup.first_token_s is not None:
            self.timings["first_token"] = popup.first_token_s
        self.timings["generation"] = time.monotonic() - popup.started_at
        self.timings["daemon_ttft"] = float(timings.get("ttft_ms", 0.0)) / 1000
        self.timings["daemon_total"] = float(timings.get("total_ms", 0.0)) / 1000

    def _accepted(self, text: str) -> None:
        assert self.selection is not None and self.popup is not None
        if self.asked_preset is None or self.popup.preset != self.asked_preset:
            self.last_preset = self.popup.preset  # the plain hotkey opens with it next time
        self.selection.replaced.connect(self._replaced)
        self.selection.replace(text)

    def _replaced(self, pasted: bool, message: str) -> None:
        assert self.selection is not None
        for key in ("paste", "restore"):
            self.timings[key] = self.selection.timings.get(key, 0.0)
        if message:
            self.notify("Rewrite", message, not pasted)
        self._end("replaced" if pasted else "failed")

    def _end(self, how: str) -> None:
        total = time.monotonic() - self.pressed_at
        parts = " ".join(f"{k} {v * 1000:.0f} ms" for k, v in self.timings.items())
        log.info("rewrite: %s after %.0f ms (%s)", how, total * 1000, parts)
        if self.popup is not None:
            self.popup.deleteLater()
        if self.selection is not None:
            self.selection.deleteLater()
        self.popup = None
        self.selection = None
        self.finished.emit(how)
