"""The rewrite popup against the real daemon and model (offscreen): streaming, switching
presets, Enter, Esc, Copy, where it opens; screenshots in light and dark."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QGuiApplication
from pytestqt.qtbot import QtBot

from daemon.presets import BUILTIN
from gui.connection import DaemonConnection
from gui.rewrite_popup import RewritePopup
from tests.conftest import Daemon
from tests.gui.conftest import SLOW, WAIT_MS, screenshot

pytestmark = pytest.mark.timeout(SLOW)  # they wait for the model
Connect = Callable[..., DaemonConnection]
PRESETS = [{"name": n, "instruction": i} for n, i in BUILTIN.items()]
TEXT = "i has went to the store yesterday and buyed three apple for my mother."
OPTIONS = {"temperature": 0, "max_tokens": 40}
LONG = " ".join([TEXT] * 12)


def popup(qtbot: QtBot, conn: DaemonConnection, text: str = TEXT, preset: str = "proofread",
          options: dict[str, Any] | None = None) -> RewritePopup:  # fmt: skip
    p = RewritePopup(conn, text, PRESETS, preset, options or OPTIONS)
    qtbot.addWidget(p)
    p.place(QPoint(40, 40))
    p.show()
    return p


def results(p: RewritePopup) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    p.finished_generating.connect(seen.append)
    return seen


def test_the_rewrite_streams_in_and_enter_replaces_with_exactly_it(
    qtbot: QtBot, daemon: Daemon, connect: Connect
) -> None:
    p = popup(qtbot, connect(daemon))
    seen = results(p)
    assert p.preset_buttons["proofread"].isChecked()
    qtbot.waitUntil(lambda: bool(seen), timeout=WAIT_MS)
    assert seen[0]["finish_reason"] in ("stop", "length")
    assert p.output.toPlainText() == seen[0]["text"] == p.text()
    assert "Done in" in p.status.text() or "Stopped early" in p.status.text()
    screenshot(p, "rewrite-popup-light")
    with qtbot.waitSignal(p.accepted, timeout=5000) as accepted:
        qtbot.keyClick(p, Qt.Key.Key_Return)
    assert accepted.args == [seen[0]["text"]]
    assert not p.isVisible()


def test_the_popup_follows_dark_mode(
    qtbot: QtBot, daemon: Daemon, connect: Connect, dark: None
) -> None:
    p = popup(qtbot, connect(daemon), preset="friendly")
    seen = results(p)
    qtbot.waitUntil(lambda: bool(seen), timeout=WAIT_MS)
    assert p.palette().color(p.palette().ColorRole.Window).lightness() < 128
    assert "background: #" in p.preset_buttons["friendly"].styleSheet()
    screenshot(p, "rewrite-popup-dark")


def test_another_preset_cancels_the_running_rewrite_and_starts_its_own(
    qtbot: QtBot, daemon: Daemon, connect: Connect
) -> None:
    p = popup(qtbot, connect(daemon), LONG, "key-points", {"temperature": 0, "max_tokens": 400})
    seen = results(p)
    qtbot.wait(300)
    qtbot.mouseClick(p.preset_buttons["concise"], Qt.MouseButton.LeftButton)
    assert p.preset == "concise" and p.preset_buttons["concise"].isChecked()
    qtbot.waitUntil(lambda: len(seen) == 2, timeout=WAIT_MS)
    first, second = seen
    assert first["finish_reason"] == "cancelled"
    assert first["tokens"]["completion"] < 400
    assert second["finish_reason"] != "cancelled" and p.text() == second["text"]


def test_enter_while_writing_replaces_once_the_rewrite_is_done(
    qtbot: QtBot, daemon: Daemon, connect: Connect
) -> None:
    p = popup(qtbot, connect(daemon), preset="concise")
    accepted: list[str] = []
    p.accepted.connect(accepted.append)
    qtbot.keyClick(p, Qt.Key.Key_Enter)
    assert not accepted and "when the rewrite is done" in p.status.text()
    qtbot.waitUntil(lambda: bool(accepted), timeout=WAIT_MS)
    assert accepted == [p.text()] and p.text().strip()


def test_esc_stops_the_generation_and_replaces_nothing(
    qtbot: QtBot, daemon: Daemon, connect: Connect
) -> None:
    p = popup(qtbot, connect(daemon), LONG, "key-points", {"temperature": 0, "max_tokens": 400})
    seen = results(p)
    events: list[str] = []
    p.accepted.connect(lambda _: events.append("accepted"))
    p.dismissed.connect(lambda: events.append("dismissed"))
    qtbot.wait(300)
    qtbot.keyClick(p, Qt.Key.Key_Escape)
    assert events == ["dismissed"] and not p.isVisible()
    qtbot.waitUntil(lambda: bool(seen), timeout=WAIT_MS)
    assert seen[0]["finish_reason"] == "cancelled"
    assert seen[0]["tokens"]["completion"] < 400  # the daemon's count: it stopped


def test_copy_puts_the_rewrite_on_the_clipboard(
    qtbot: QtBot, daemon: Daemon, connect: Connect
) -> None:
    p = popup(qtbot, connect(daemon), preset="professional")
    seen = results(p)
    qtbot.waitUntil(lambda: bool(seen), timeout=WAIT_MS)
    with qtbot.waitSignal(p.copied, timeout=5000):
        qtbot.mouseClick(p.copy_button, Qt.MouseButton.LeftButton)
    assert QGuiApplication.clipboard().text() == seen[0]["text"]


def test_the_popup_opens_by_the_pointer_and_stays_on_the_screen(
    qtbot: QtBot, daemon: Daemon, connect: Connect
) -> None:
    p = popup(qtbot, connect(daemon))
    area = QGuiApplication.primaryScreen().availableGeometry()
    p.place(QPoint(100, 100))
    assert (p.x(), p.y()) == (112, 118)  # just below and right of the pointer
    p.place(QPoint(area.right() - 5, area.bottom() - 5))
    assert area.contains(p.frameGeometry().topLeft())
    assert p.x() + p.width() <= area.right() + 1 and p.y() + p.height() <= area.bottom() + 1
    p.cancel()


def test_a_popup_opened_before_the_text_is_known_starts_when_given_it(
    qtbot: QtBot, daemon: Daemon, connect: Connect
) -> None:
    """Wayland's order: the popup takes the focus first, then the selection is read."""
    p = RewritePopup(connect(daemon), "", PRESETS, "concise", OPTIONS, start=False)
    qtbot.addWidget(p)
    seen = results(p)
    assert p.status.text() == "Reading your selection…" and p.reply is None
    assert not p.accept_button.isEnabled()
    p.begin(TEXT)
    assert p.original_label.full == TEXT and p.reply is not None
    qtbot.waitUntil(lambda: bool(seen), timeout=WAIT_MS)
    assert p.text() == seen[0]["text"]


def test_a_status_that_wraps_grows_the_popup_instead_of_running_over_the_rewrite(
    qtbot: QtBot, daemon: Daemon, connect: Connect
) -> None:
    """An error says what to do in a sentence or two (the daemon could not start: where
    its log is): the popup is already shown, so it must grow to fit it."""
    p = RewritePopup(connect(daemon), "", PRESETS, "concise", OPTIONS, start=False)
    qtbot.addWidget(p)
    p.place(QPoint(40, 40))
    p.show()
    before = p.height()
    p._set_status("Hearth's background service could not start. " * 3)
    qtbot.waitUntil(lambda: p.status.geometry().top() > p.output.geometry().bottom())
    assert p.height() > before
    assert p.accept_button.geometry().top() > p.status.geometry().bottom()
    p.cancel()


def test_a_preset_routed_to_the_remote_model_says_so_before_it_is_used(
    qtbot: QtBot, daemon: Daemon, connect: Connect
) -> None:
    remote = {"name": "polish", "instruction": "Polish it.", "route": "remote"}
    p = RewritePopup(connect(daemon), "", [*PRESETS, remote], "proofread", OPTIONS, start=False)
    qtbot.addWidget(p)
    button = p.preset_buttons["polish"]
    assert button.text() == "polish ↗" and "remote model" in button.toolTip()
    assert p.preset_buttons["proofread"].text() == "proofread"
    assert "remote" not in p.preset_buttons["proofread"].toolTip()
    p.place(QPoint(40, 40))
    p.show()
    screenshot(p, "rewrite-popup-remote-preset")
    assert p.output.height() < 100  # small while empty, as it is for a sentence
    p.cancel()
