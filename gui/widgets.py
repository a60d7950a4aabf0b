"""Small pieces the windows share: the message banner, palette-aware colours, formats."""

from __future__ import annotations

import time
from enum import StrEnum

from PySide6.QtCore import QEvent, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QFont, QPalette, QResizeEvent
from PySide6.QtWidgets import (
    QApplication,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QToolButton,
    QWidget,
)

PALETTE_EVENTS = (QEvent.Type.PaletteChange, QEvent.Type.ApplicationPaletteChange)


def follow_palette(window: QWidget, event: QEvent) -> None:
    """Call from a window's changeEvent: the system switched light/dark, so every
    palette-tinted child (banners, bubbles) recomputes its colours. A child with a
    style sheet of its own gets no PaletteChange itself."""
    if event.type() in PALETTE_EVENTS:
        for child in window.findChildren(QWidget):
            restyle = getattr(child, "restyle", None)
            if callable(restyle):
                restyle()


class Tone(StrEnum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


_TONES = {  # (light background, dark background, accent)
    Tone.INFO: ("#E6F0FB", "#1D2B3A", "#2F7DE1"),
    Tone.WARNING: ("#FDF3DC", "#3A2F17", "#C98A0B"),
    Tone.ERROR: ("#FBE7E7", "#3D1F1F", "#D93636"),
}


def is_dark(palette: QPalette) -> bool:
    return palette.color(QPalette.ColorRole.Window).lightness() < 128


def mix(a: QColor, b: QColor, t: float) -> QColor:
    """``a`` moved ``t`` of the way to ``b``: tints that follow the palette."""
    return QColor(
        round(a.red() + (b.red() - a.red()) * t),
        round(a.green() + (b.green() - a.green()) * t),
        round(a.blue() + (b.blue() - a.blue()) * t),
    )


def emphasize(
    label: QLabel, points: float = 1.5, weight: QFont.Weight = QFont.Weight.DemiBold
) -> None:
    """A larger, bolder label by font, not style sheet: a style sheet would pin its
    colours and it would stay dark-on-dark after a switch to dark mode."""
    font = label.font()
    font.setPointSizeF(font.pointSizeF() + points)
    font.setWeight(weight)
    label.setFont(font)


class ElidedLabel(QLabel):
    """A one-line label that ends in "…" when it does not fit, instead of being clipped
    or pushing its neighbours away; the whole text is in its tooltip."""

    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.full = ""
        self.setText(text)

    def setText(self, text: str) -> None:
        self.full = text
        self.setToolTip(text)
        self._elide()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        shown = self.fontMetrics().elidedText(self.full, Qt.TextElideMode.ElideRight, self.width())
        super().setText(shown)


class Banner(QWidget):
    """A calm one-line message above a window's content, with an optional action."""

    action = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("banner")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(12, 8, 8, 8)
        self.label = QLabel(self)
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.button = QPushButton(self)
        self.button.clicked.connect(self.action.emit)
        self.close_button = QToolButton(self)
        self.close_button.setText("✕")
        self.close_button.setAutoRaise(True)
        self.close_button.setAccessibleName("Dismiss message")
        self.close_button.clicked.connect(self.hide)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.button)
        layout.addWidget(self.close_button)
        self.tone = Tone.INFO
        self._timer = QTimer(self, singleShot=True)
        self._timer.timeout.connect(self.hide)
        self.hide()

    def show_message(
        self, text: str, tone: Tone = Tone.INFO, action: str | None = None,
        timeout_ms: int = 0, closable: bool = True,
    ) -> None:  # fmt: skip
        self.tone = tone
        self.label.setText(text)
        self.setAccessibleName(f"{tone.value}: {text}")
        self.button.setVisible(action is not None)
        self.button.setText(action or "")
        self.close_button.setVisible(closable)
        self.restyle()
        self.show()
        if timeout_ms:
            self._timer.start(timeout_ms)
        else:
            self._timer.stop()

    def text(self) -> str:
        return "" if self.isHidden() else self.label.text()

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:
            self.restyle()

    def restyle(self) -> None:
        light, dark, accent = _TONES[self.tone]
        background = dark if is_dark(QApplication.palette()) else light
        sheet = (
            f"#banner {{ background: {background}; border-left: 4px solid {accent};"
            " border-radius: 6px; }"
        )
        if self.styleSheet() != sheet:
            self.setStyleSheet(sheet)


def human_bytes(n: float | None) -> str:
    if not n:
        return "0 B"
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def when(epoch: float | None, now: float | None = None) -> str:
    """A short, human time: 'just now', '5 min ago', 'yesterday 14:02', '3 Nov'."""
    if not epoch:
        return ""
    now = time.time() if now is None else now
    age = now - epoch
    if age < 60:
        return "just now"
    if age < 3600:
        return f"{int(age // 60)} min ago"
    t, today = time.localtime(epoch), time.localtime(now)
    if t.tm_yday == today.tm_yday and t.tm_year == today.tm_year:
        return time.strftime("%H:%M", t)
    if age < 6 * 86400:
        return time.strftime("%a %H:%M", t)
    return time.strftime("%-d %b %Y" if t.tm_year != today.tm_year else "%-d %b", t)
