"""Hearth's icons, drawn with QPainter: no image files to ship, every size sharp.

The tray icon's look is its state: a warm flame when idle, a brighter one with a
pulse dot while generating, grey when the daemon is out of reach, a red badge on an
error and a padlock while the vault is locked.
"""

from __future__ import annotations

from enum import StrEnum

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPainterPath, QPen, QPixmap

SIZES = (16, 22, 24, 32, 48, 64, 128, 256)


class Look(StrEnum):
    IDLE = "idle"
    GENERATING = "generating"
    OFFLINE = "offline"
    ERROR = "error"
    LOCKED = "locked"


EMBER = QColor("#E8642C")  # the flame's outer colour: Hearth's colour
GLOW = QColor("#FFC24B")
HOT = QColor("#FF4F1F")
GREY = QColor("#8A8F98")
PALE = QColor("#C9CDD3")
RED = QColor("#D93636")
BLUE = QColor("#2F7DE1")


def _flame(s: float, inner: bool) -> QPainterPath:
    """A flame in a square of side ``s``: outer tongue, or the inner one."""
    path = QPainterPath()
    if not inner:
        path.moveTo(0.50 * s, 0.04 * s)
        path.cubicTo(0.62 * s, 0.22 * s, 0.86 * s, 0.36 * s, 0.86 * s, 0.62 * s)
        path.cubicTo(0.86 * s, 0.84 * s, 0.70 * s, 0.97 * s, 0.50 * s, 0.97 * s)
        path.cubicTo(0.30 * s, 0.97 * s, 0.14 * s, 0.84 * s, 0.14 * s, 0.63 * s)
        path.cubicTo(0.14 * s, 0.46 * s, 0.26 * s, 0.36 * s, 0.33 * s, 0.26 * s)
        path.cubicTo(0.36 * s, 0.38 * s, 0.42 * s, 0.44 * s, 0.47 * s, 0.46 * s)
        path.cubicTo(0.44 * s, 0.32 * s, 0.46 * s, 0.16 * s, 0.50 * s, 0.04 * s)
    else:
        path.moveTo(0.52 * s, 0.44 * s)
        path.cubicTo(0.60 * s, 0.56 * s, 0.70 * s, 0.64 * s, 0.70 * s, 0.76 * s)
        path.cubicTo(0.70 * s, 0.87 * s, 0.61 * s, 0.93 * s, 0.50 * s, 0.93 * s)
        path.cubicTo(0.39 * s, 0.93 * s, 0.30 * s, 0.87 * s, 0.30 * s, 0.77 * s)
        path.cubicTo(0.30 * s, 0.66 * s, 0.40 * s, 0.60 * s, 0.44 * s, 0.52 * s)
        path.cubicTo(0.47 * s, 0.58 * s, 0.50 * s, 0.60 * s, 0.53 * s, 0.61 * s)
        path.cubicTo(0.50 * s, 0.55 * s, 0.50 * s, 0.50 * s, 0.52 * s, 0.44 * s)
    return path


def _badge_rect(s: float) -> QRectF:
    return QRectF(0.52 * s, 0.52 * s, 0.48 * s, 0.48 * s)


def _draw_badge(p: QPainter, s: float, look: Look) -> None:
    r = _badge_rect(s)
    if look is Look.ERROR:
        p.setPen(QPen(QColor("white"), max(1.0, s * 0.04)))
        p.setBrush(RED)
        p.drawEllipse(r)
        pen = QPen(QColor("white"), max(1.5, s * 0.08))
        pen.setCapStyle(Qt.PenCapStyle.RoundCap)
        p.setPen(pen)
        cx = r.center().x()
        p.drawLine(
            QPointF(cx, r.top() + r.height() * 0.24), QPointF(cx, r.top() + r.height() * 0.58)
        )
        p.drawPoint(QPointF(cx, r.top() + r.height() * 0.78))
    elif look is Look.LOCKED:
        body = QRectF(r.left() + r.width() * 0.12, r.top() + r.height() * 0.42,
                      r.width() * 0.76, r.height() * 0.56)  # fmt: skip
        shackle = QRectF(r.left() + r.width() * 0.26, r.top() + r.height() * 0.06,
                         r.width() * 0.48, r.height() * 0.62)  # fmt: skip
        p.setBrush(Qt.BrushStyle.NoBrush)
        for colour, width in ((QColor("white"), 0.13), (QColor("#3B3F46"), 0.07)):
            p.setPen(QPen(colour, max(1.5, s * width)))  # a white halo: visible on dark bars
            p.drawArc(shackle, 0, 180 * 16)
            for x in (shackle.left(), shackle.right()):
                p.drawLine(QPointF(x, shackle.center().y()), QPointF(x, body.top()))
        p.setPen(QPen(QColor("white"), max(1.0, s * 0.03)))
        p.setBrush(QColor("#3B3F46"))
        p.drawRoundedRect(body, s * 0.05, s * 0.05)
    elif look is Look.GENERATING:
        p.setPen(QPen(QColor("white"), max(1.0, s * 0.04)))
        p.setBrush(BLUE)
        p.drawEllipse(QRectF(0.64 * s, 0.64 * s, 0.34 * s, 0.34 * s))


def pixmap(look: Look, size: int, scale: float = 1.0) -> QPixmap:
    px = QPixmap(int(size * scale), int(size * scale))
    px.setDevicePixelRatio(scale)
    px.fill(Qt.GlobalColor.transparent)
    p = QPainter(px)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    s = float(size)
    outer, inner = (GREY, PALE) if look is Look.OFFLINE else (EMBER, GLOW)
    if look is Look.GENERATING:
        outer = HOT
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(outer)
    p.drawPath(_flame(s, inner=False))
    p.setBrush(inner)
    p.drawPath(_flame(s, inner=True))
    _draw_badge(p, s, look)
    p.end()
    return px


def icon(look: Look = Look.IDLE) -> QIcon:
    result = QIcon()
    for size in SIZES:
        result.addPixmap(pixmap(look, size))
    return result


def app_icon() -> QIcon:
    return icon(Look.IDLE)
