"""The chat window against the real daemon and model: streaming, stop, delete, history."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QKeySequence
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QMessageBox
from pytestqt.qtbot import QtBot

from daemon.errors import NotFound
from gui.chat_window import ChatWindow
from gui.connection import DaemonConnection
from tests.conftest import Daemon
from tests.gui.conftest import FAST, SLOW, WAIT_MS, dark_palette, screenshot

pytestmark = pytest.mark.timeout(SLOW)  # they wait for the model
Connect = Callable[..., DaemonConnection]


@pytest.fixture
def window(qtbot: QtBot, daemon: Daemon, connect: Connect) -> Iterator[ChatWindow]:
    win = ChatWindow(connect(daemon))
    win.options = dict(FAST)
    win.hide_on_close = False
    qtbot.addWidget(win)
    win.show()
    qtbot.waitUntil(lambda: win.model_box.count() > 0 and bool(win.vault), timeout=30_000)
    yield win


def send(qtbot: QtBot, win: ChatWindow, text: str) -> None:
    win.composer.setFocus()
    QTest.keyClicks(win.composer, text)
    QTest.keyClick(win.composer, Qt.Key.Key_Return)
    assert win.reply is not None, "Enter did not send"


def finish(qtbot: QtBot, win: ChatWindow) -> None:
    qtbot.waitUntil(lambda: win.reply is None, timeout=WAIT_MS)


def test_an_answer_streams_into_the_window_and_is_kept_in_history(
    qtbot: QtBot, window: ChatWindow, daemon: Daemon, qapp: QApplication
) -> None:
    window.options = {"max_tokens": 32, "temperature": 0}
    send(qtbot, window, "What is a hash chain? Answer in two sentences.")
    assert window.send_button.text() == "Stop"
    seen: list[int] = []
    assert window.reply is not None
    window.reply.delta.connect(
        lambda _: seen.append(len(window.answer.text if window.answer else ""))
    )
    finish(qtbot, window)
    bubble = window.transcript.bubbles[-1]
    assert bubble.role == "assistant" and bubble.text
    assert seen and seen == sorted(seen) and seen[-1] <= len(bubble.text)  # it grew
    assert bubble.body.markdown == bubble.text  # rendered, not left at "Thinking…"
    assert window.send_button.text() == "Send"
    assert window.conversation_id is not None
    with daemon.client() as c:
        stored = c.call("conversations.get", {"id": window.conversation_id})
    assert [m["role"] for m in stored["messages"]] == ["user", "assistant"]
    assert stored["messages"][1]["content"] == bubble.text
    qtbot.waitUntil(lambda: window.list.count() > 0, timeout=10_000)
    assert "smollm2" in window.footer.text()
    screenshot(window, "chat-light")

    light = bubble.grab().toImage().pixelColor(4, bubble.height() // 2)
    qapp.setPalette(dark_palette())
    try:
        qtbot.waitUntil(lambda: "#2" in bubble.styleSheet() or "#3" in bubble.styleSheet())
        dark = bubble.grab().toImage().pixelColor(4, bubble.height() // 2)
        assert light.lightness() > 200 and dark.lightness() < 80, (light.name(), dark.name())
        screenshot(window, "chat-dark")
    finally:
        qapp.setPalette(QApplication.style().standardPalette())


def test_shift_enter_makes_a_new_line_and_does_not_send(qtbot: QtBot, window: ChatWindow) -> None:
    window.composer.setFocus()
    QTest.keyClicks(window.composer, "first line")
    QTest.keyClick(window.composer, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    QTest.keyClicks(window.composer, "second line")
    assert window.reply is None and not window.transcript.bubbles
    assert window.composer.toPlainText() == "first line\nsecond line"


def test_esc_stops_the_answer_and_what_was_said_is_kept_and_copied(
    qtbot: QtBot, window: ChatWindow, daemon: Daemon
) -> None:
    window.options = {"max_tokens": 1500, "temperature": 0}
    send(qtbot, window, "Tell me a very long story about a lighthouse keeper.")
    qtbot.waitUntil(lambda: bool(window.answer and window.answer.text), timeout=WAIT_MS)
    QTest.keyClick(window, Qt.Key.Key_Escape)
    finish(qtbot, window)
    bubble = window.transcript.bubbles[-1]
    assert bubble.note.text() == "Stopped." and not bubble.note.isHidden()
    with daemon.client() as c:
        stored = c.call("conversations.get", {"id": window.conversation_id})
    assert stored["messages"][-1]["content"] == bubble.text
    assert len(bubble.text) < 1500 * 4
    bubble.copy_button.click()  # "copy an answer"
    assert QGuiApplication.clipboard().text() == bubble.text
    assert bubble.copy_button.text() == "Copied"
    window.new_chat()  # the bubble goes while its "Copied" is showing
    qtbot.wait(1700)  # past the moment it would have said "Copy" again: no error


def test_delete_says_it_is_permanent_then_shreds_the_conversation(
    qtbot: QtBot, window: ChatWindow, daemon: Daemon
) -> None:
    send(qtbot, window, "Remember the word teapot.")
    finish(qtbot, window)
    conv_id = window.conversation_id
    assert conv_id is not None
    window.delete_button.click()
    box = window.delete_box
    assert box is not None and box.isVisible()
    assert "permanently" in box.text() and "crypto-shredding" in box.informativeText()
    delete = next(
        b for b in box.buttons() if box.buttonRole(b) == QMessageBox.ButtonRole.DestructiveRole
    )
    delete.click()
    qtbot.waitUntil(lambda: window.conversation_id is None, timeout=30_000)
    assert not window.transcript.bubbles
    with daemon.client() as c, pytest.raises(NotFound):
        c.call("conversations.get", {"id": conv_id})

    def listed() -> list[str]:
        items = range(window.list.count())
        return [window.list.item(i).data(Qt.ItemDataRole.UserRole) for i in items]

    qtbot.waitUntil(lambda: conv_id not in listed(), timeout=30_000)


def test_cancelling_the_delete_keeps_the_conversation(
    qtbot: QtBot, window: ChatWindow, daemon: Daemon
) -> None:
    send(qtbot, window, "Remember the word kettle.")
    finish(qtbot, window)
    window.delete_button.click()
    assert window.delete_box is not None
    window.delete_box.button(QMessageBox.StandardButton.Cancel).click()
    qtbot.wait(300)
    with daemon.client() as c:
        assert c.call("conversations.get", {"id": window.conversation_id})["messages"]


def test_dont_keep_this_chat_stores_nothing_but_the_chat_goes_on(
    qtbot: QtBot, window: ChatWindow, daemon: Daemon
) -> None:
    with daemon.client() as c:
        before = len(c.call("conversations.list")["conversations"])
    window.keep.setChecked(True)
    send(qtbot, window, "Say hi.")
    finish(qtbot, window)
    send(qtbot, window, "Say bye.")
    finish(qtbot, window)
    assert window.conversation_id is None
    assert len(window.unstored) == 4  # the second turn was sent with the first
    with daemon.client() as c:
        assert len(c.call("conversations.list")["conversations"]) == before


def test_a_failed_message_shows_why_and_goes_back_into_the_composer(
    qtbot: QtBot, window: ChatWindow
) -> None:
    window.conversation_id = "0000000000000000"  # deleted meanwhile, elsewhere
    send(qtbot, window, "Are you there?")
    finish(qtbot, window)
    bubble = window.transcript.bubbles[-1]
    assert bubble.note_error
    assert "could not answer" in bubble.note.text()
    assert window.composer.toPlainText() == "Are you there?"


def test_search_narrows_the_list_and_opening_a_result_shows_it(
    qtbot: QtBot, window: ChatWindow
) -> None:
    send(qtbot, window, "Plan a picnic with zucchini bread.")
    finish(qtbot, window)
    conv_id = window.conversation_id
    window.new_chat()
    assert not window.transcript.bubbles
    QTest.keyClicks(window.search, "zucchini")
    qtbot.waitUntil(
        lambda: (
            window.list.count() == 1
            and window.list.item(0).data(Qt.ItemDataRole.UserRole) == conv_id
        ),
        timeout=30_000,
    )
    window._open_item(window.list.item(0))
    qtbot.waitUntil(lambda: window.conversation_id == conv_id, timeout=30_000)
    assert window.transcript.bubbles[0].text == "Plan a picnic with zucchini bread."


def test_ctrl_n_starts_a_new_chat_and_controls_have_accessible_names(
    qtbot: QtBot, window: ChatWindow
) -> None:
    window.title.setText("Old chat")
    window.conversation_id = "abc"
    QTest.keySequence(window, QKeySequence(QKeySequence.StandardKey.New))
    assert window.conversation_id is None and window.title.full == "New chat"
    for widget in (window.composer, window.send_button, window.search, window.list,
                   window.model_box, window.engine_box, window.keep, window.delete_button,
                   window.new_button):  # fmt: skip
        assert widget.accessibleName(), widget


def test_markdown_wraps_long_lines_and_code_instead_of_cutting_them_off(
    qtbot: QtBot, window: ChatWindow
) -> None:
    code = "x = '" + "long" * 60 + "'"
    answer = f"Some **bold** and `code`.\n\n```python\n{code}\n```\n\n" + "hash" * 50
    window._show_conversation(
        {"id": "md", "title": "Markdown", "messages": [
            {"role": "user", "content": "Show me"}, {"role": "assistant", "content": answer}]}
    )  # fmt: skip
    bubble = window.transcript.bubbles[-1]
    qtbot.waitUntil(lambda: bubble.body.width() > 300)
    document = bubble.body.document()
    assert document.idealWidth() <= bubble.body.viewport().width() + 1  # nothing overflows
    assert bubble.body.height() >= document.size().height()  # nothing is cut at the bottom
    assert window.transcript.horizontalScrollBar().maximum() == 0
    assert "long" * 60 in bubble.body.toPlainText()
    screenshot(window, "chat-markdown")
