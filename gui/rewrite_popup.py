"""The rewrite popup: the original, the streamed rewrite, presets to switch, Accept/Copy/Cancel.

It opens near the mouse pointer. On X11 it is a Qt popup: it takes the keyboard without
taking the focus from the application the text came from, so that application keeps its
selection and the paste lands in it; a click outside closes it like a menu (a cancel).
Elsewhere it is a small tool window that stays on top.

Keys: Enter accepts (while the rewrite is still coming, it accepts as soon as it is
done), Esc cancels and stops the generation, Ctrl+C copies, 1-9 switch presets.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from PySide6.QtCore import QEvent, QPoint, Qt, Signal
from PySide6.QtGui import QCloseEvent, QCursor, QGuiApplication, QKeyEvent, QKeySequence
from PySide6.QtWidgets import (
    QButtonGroup,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from daemon.errors import HearthError
from gui import icons
from gui.connection import DaemonConnection, Reply
from gui.widgets import ElidedLabel, emphasize, follow_palette, mix

log = logging.getLogger("hearth.tray")
PRESETS_PER_ROW = 4
OFFSET = QPoint(12, 18)  # below and right of the pointer, clear of its arrow


class RewritePopup(QFrame):
    """Runs the rewrite itself (``rewrite`` on the daemon) and reports the user's choice.
    Exactly one of ``accepted`` (the text to paste), ``copied`` or ``dismissed`` is
    emitted; a generation still running is cancelled first."""

    accepted = Signal(str)
    copied = Signal(str)
    dismissed = Signal()
    finished_generating = Signal(dict)  # a rewrite's result (tests, bench, logs)

    def __init__(
        self, connection: DaemonConnection, text: str, presets: list[dict[str, Any]],
        preset: str, options: dict[str, Any] | None = None, parent: QWidget | None = None,
        start: bool = True,
    ) -> None:  # fmt: skip
        """``start=False``: open before the text is known (Wayland: the selection can be
        read only once we have the focus); ``begin(text)`` then starts."""
        super().__init__(parent)
        self.conn = connection
        self.original = text
        self.options = options or {}
        self.preset = preset
        self.reply: Reply | None = None
        self.result: dict[str, Any] | None = None
        self.accept_when_done = False
        self.ended = False
        self.started_at = 0.0
        self.first_token_s: float | None = None
        x11 = QGuiApplication.platformName() == "xcb"
        flags = Qt.WindowType.Popup if x11 else (
            Qt.WindowType.Tool | Qt.WindowType.WindowStaysOnTopHint
        )  # fmt: skip
        self.setWindowFlags(flags)
        self.setWindowTitle("Hearth rewrite")
        self.setAccessibleName("Hearth rewrite")
        self.setWindowIcon(icons.app_icon())
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMinimumWidth(460)
        self.setMaximumWidth(640)
        self._build(presets)
        self.restyle()
        if start:
            self.start(preset)
        else:
            self._set_status("Reading your selection…")
            self._buttons(done=False)

    def begin(self, text: str) -> None:
        self.original = text
        self.original_label.setText(" ".join(text.split()))
        self.start(self.preset)

    # -- layout --------------------------------------------------------------------------

    def _build(self, presets: list[dict[str, Any]]) -> None:
        layout = QVBoxLayout(self)
        layout.setContentsMargins(14, 12, 14, 12)
        layout.setSpacing(8)
        head = QHBoxLayout()
        title = QLabel("Rewrite", self)
        emphasize(title, 1)
        hint = QLabel("Enter replaces · Esc cancels · 1-9 switch", self)
        hint.setEnabled(False)
        head.addWidget(title)
        head.addStretch(1)
        head.addWidget(hint)
        layout.addLayout(head)
        self.original_label = ElidedLabel(" ".join(self.original.split()), self)
        self.original_label.setAccessibleName("Original text")
        self.original_label.setForegroundRole(self.original_label.foregroundRole())
        self.original_label.setEnabled(False)  # greyed: the palette's disabled text colour
        layout.addWidget(self.original_label)

        grid = QGridLayout()
        grid.setSpacing(4)
        self.preset_group = QButtonGroup(self)
        self.preset_buttons: dict[str, QPushButton] = {}
        self.remote = {p["name"] for p in presets if p.get("route") == "remote"}
        for i, preset in enumerate(presets):
            remote = preset["name"] in self.remote  # the user routed it: it says so
            button = QPushButton(preset["name"] + (" ↗" if remote else ""), self)
            button.setCheckable(True)
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            key = f"{i + 1}: " if i < 9 else ""
            where = " (answered by your remote model)" if remote else ""
            button.setToolTip(f"{key}{preset['instruction']}{where}")
            button.setAccessibleName(f"Preset {preset['name']}")
            button.clicked.connect(lambda _=False, n=preset["name"]: self.start(n))
            self.preset_group.addButton(button)
            self.preset_buttons[preset["name"]] = button
            grid.addWidget(button, i // PRESETS_PER_ROW, i % PRESETS_PER_ROW)
        layout.addLayout(grid)

        self.output = QPlainTextEdit(self)
        self.output.setReadOnly(True)
        self.output.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.output.setAccessibleName("Rewritten text")
        self.output.setMinimumHeight(72)
        self.output.setMaximumHeight(260)
        self.output.textChanged.connect(self._fit_output)
        layout.addWidget(self.output, 1)
        self._fit_output()  # small while empty (Wayland opens it before the text is read)
        self.status = QLabel(self)
        self.status.setAccessibleName("Status")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)

        row = QHBoxLayout()
        self.cancel_button = QPushButton("Cancel", self)
        self.copy_button = QPushButton("Copy", self)
        self.accept_button = QPushButton("Replace", self)
        self.accept_button.setDefault(True)
        self.accept_button.setToolTip("Replace the selected text (Enter)")
        self.cancel_button.setToolTip("Close and stop writing (Esc)")
        self.copy_button.setToolTip("Put the rewrite on the clipboard (Ctrl+C)")
        for button in (self.cancel_button, self.copy_button, self.accept_button):
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        row.addStretch(1)
        row.addWidget(self.cancel_button)
        row.addWidget(self.copy_button)
        row.addWidget(self.accept_button)
        layout.addLayout(row)
        self.cancel_button.clicked.connect(self.cancel)
        self.copy_button.clicked.connect(self.copy)
        self.accept_button.clicked.connect(self.accept)

    def _fit_output(self) -> None:
        """As tall as the rewrite (within bounds): a sentence gets a small popup."""
        doc = self.output.document()
        doc.setTextWidth(self.output.viewport().width())
        height = int(doc.size().height() * self.output.fontMetrics().lineSpacing()) + 12
        self.output.setFixedHeight(max(72, min(260, height)))
        if self.isVisible():
            self.adjustSize()

    def restyle(self) -> None:
        """The chosen preset stands out in the palette's highlight (light or dark)."""
        pal = self.palette()
        accent = pal.color(pal.ColorRole.Highlight)
        fill = mix(pal.color(pal.ColorRole.Button), accent, 0.25)
        sheet = (
            f"QPushButton:checked {{ background: {fill.name()}; border: 1px solid "
            f"{accent.name()}; border-radius: 4px; padding: 4px 8px; }}"
        )
        for button in self.preset_buttons.values():
            if button.styleSheet() != sheet:
                button.setStyleSheet(sheet)

    def place(self, pointer: QPoint | None = None) -> None:
        """Near the pointer, inside the screen it is on."""
        at = pointer if pointer is not None else QCursor.pos()
        self.adjustSize()
        screen = QGuiApplication.screenAt(at) or QGuiApplication.primaryScreen()
        area = screen.availableGeometry()
        x = min(max(at.x() + OFFSET.x(), area.left()), area.right() - self.width())
        y = at.y() + OFFSET.y()
        if y + self.height() > area.bottom():
            y = at.y() - self.height() - OFFSET.y() // 2  # above the pointer instead
        self.move(x, max(y, area.top()))

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        follow_palette(self, event)
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.ApplicationPaletteChange):
            self.restyle()

    # -- generating ----------------------------------------------------------------------

    def start(self, preset: str) -> None:
        """Rewrite with ``preset``; a rewrite still running is cancelled first."""
        if self.ended:
            return
        self._stop_generating()
        self.preset = preset
        button = self.preset_buttons.get(preset)
        if button is not None:
            button.setChecked(True)
        self.output.clear()
        self.result = None
        self.first_token_s = None
        self.started_at = time.monotonic()
        where = " with your remote model" if preset in self.remote else ""
        self._set_status(f"Writing ({preset}){where}…")
        params = {"text": self.original, "preset": preset, "options": self.options}
        reply = self.conn.call("rewrite", params)
        reply.delta.connect(lambda d, r=reply: self._delta(r, d))
        reply.finished.connect(_log_result)
        reply.finished.connect(lambda res, r=reply: self._finished(r, res))
        reply.failed.connect(lambda e, r=reply: self._failed(r, e))
        self.reply = reply
        self._buttons(done=False)

    def _delta(self, reply: Reply, delta: dict[str, Any]) -> None:
        if reply is not self.reply:
            return
        if self.first_token_s is None:
            self.first_token_s = time.monotonic() - self.started_at
            log.info("rewrite popup: first words after %.0f ms", self.first_token_s * 1000)
        cursor = self.output.textCursor()
        cursor.movePosition(cursor.MoveOperation.End)
        cursor.insertText(delta.get("text", ""))
        self.output.ensureCursorVisible()

    def _finished(self, reply: Reply, result: dict[str, Any]) -> None:
        if reply is not self.reply:
            return
        self.reply = None
        self.result = result
        reason = result.get("finish_reason", "")
        self.output.setPlainText(result["text"])  # the deltas add up to it; this is exact
        self.finished_generating.emit(result)
        if self.ended:
            return
        elapsed = time.monotonic() - self.started_at
        if not result["text"].strip():
            self._set_status("The model returned nothing: try another preset.")
        elif reason in ("length", "repetition"):
            self._set_status(f"Stopped early ({reason}) after {elapsed:.1f} s: check the end.")
        else:
            self._set_status(f"Done in {elapsed:.1f} s · Enter replaces your selection")
        self._buttons(done=bool(result["text"].strip()))
        if self.accept_when_done:
            self.accept()

    def _failed(self, reply: Reply, error: HearthError) -> None:
        if reply is not self.reply:
            return
        self.reply = None
        log.info("rewrite popup: failed (%s)", error.kind)
        self.accept_when_done = False
        self._set_status(error.message)
        self._buttons(done=False)

    def _stop_generating(self) -> None:
        if self.reply is not None and not self.reply.done:
            reply = self.reply
            reply.finished.connect(lambda res: self.finished_generating.emit(res))
            log.info("rewrite popup: cancelling a rewrite in progress")
            reply.cancel()
        self.reply = None

    # -- choices -------------------------------------------------------------------------

    def text(self) -> str:
        return self.result["text"] if self.result is not None else ""

    def accept(self) -> None:
        if self.ended:
            return
        if self.result is None:
            if self.reply is not None:
                self.accept_when_done = True
                self._set_status("Replacing your selection when the rewrite is done…")
            return
        if self.text().strip():
            self._end()
            self.accepted.emit(self.text())

    def copy(self) -> None:
        text = self.text() or self.output.toPlainText()
        if self.ended or not text.strip():
            return
        self._end()
        QGuiApplication.clipboard().setText(text)
        self.copied.emit(text)

    def cancel(self) -> None:
        if not self.ended:
            self._end()
            self.dismissed.emit()

    def _end(self) -> None:
        self.ended = True
        self._stop_generating()
        self.hide()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key = event.key()
        if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self.accept()
        elif key == Qt.Key.Key_Escape:
            self.cancel()
        elif event.matches(QKeySequence.StandardKey.Copy):
            self.copy()
        elif Qt.Key.Key_1 <= key <= Qt.Key.Key_9:
            names = list(self.preset_buttons)
            index = int(key) - int(Qt.Key.Key_1)
            if index < len(names):
                self.start(names[index])
        else:
            super().keyPressEvent(event)

    def closeEvent(self, event: QCloseEvent) -> None:
        """A click outside (X11 popups close like menus) or the window's close: a cancel."""
        self.cancel()
        super().closeEvent(event)

    # -- looks ---------------------------------------------------------------------------

    def _set_status(self, text: str) -> None:
        """A status may wrap to two lines (an error): the popup grows rather than let it
        run over the rewrite."""
        self.status.setText(text)
        if self.isVisible():
            self.adjustSize()

    def _buttons(self, done: bool) -> None:
        self.accept_button.setEnabled(done or self.reply is not None)
        self.copy_button.setEnabled(done)


def _log_result(result: dict[str, Any]) -> None:
    """Every rewrite's end, a cancelled one's too: its token count is the daemon's."""
    tokens = result.get("tokens", {}).get("completion", 0)
    reason = result.get("finish_reason", "")
    how = "cancelled" if reason == "cancelled" else "finished"
    log.info("rewrite popup: %s after %d tokens (%s)", how, tokens, reason)
