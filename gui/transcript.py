"""The chat's transcript: message bubbles rendered as Markdown, and the composer."""

from __future__ import annotations

from PySide6.QtCore import QEvent, Qt, QTimer, Signal
from PySide6.QtGui import (
    QFontDatabase,
    QGuiApplication,
    QKeyEvent,
    QPalette,
    QResizeEvent,
    QTextCursor,
    QTextOption,
    QWheelEvent,
)
from PySide6.QtWidgets import (
    QApplication,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QScrollArea,
    QSizePolicy,
    QTextBrowser,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from gui.widgets import is_dark, mix

RENDER_MS = 50  # at most 20 Markdown re-renders a second while an answer streams

NOTES = {
    "length": "Stopped at the length limit.",
    "cancelled": "Stopped.",
    "repetition": "Stopped: the model was repeating itself.",
}


class MarkdownView(QTextBrowser):
    """Read-only Markdown that grows to its content's height: the transcript scrolls, not
    the message. Long words and code lines wrap rather than being cut off at the edge,
    links are never followed (a click must never reach the network), and the wheel
    scrolls the transcript even over a message."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setOpenLinks(False)
        self.setOpenExternalLinks(False)
        self.setWordWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
        self.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.viewport().setAutoFillBackground(False)
        self.setStyleSheet("QTextBrowser { background: transparent; }")
        self.document().setDocumentMargin(0)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.document().documentLayout().documentSizeChanged.connect(lambda _: self._fit())
        self.markdown = ""

    def set_markdown(self, text: str) -> None:
        self.markdown = text
        self.setMarkdown(text)
        self._style_code()
        self._fit()

    def _style_code(self) -> None:
        """Code in a monospace font on a faint tint, and code blocks that wrap (a
        clipped line would hide what the model wrote)."""
        pal = QApplication.palette()
        tint = mix(pal.color(QPalette.ColorRole.Base), pal.color(QPalette.ColorRole.Text), 0.07)
        mono = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        cursor = QTextCursor(self.document())
        block = self.document().begin()
        while block.isValid():
            fmt = block.blockFormat()
            code_block = fmt.nonBreakableLines()
            if code_block:
                fmt.setNonBreakableLines(False)
                fmt.setBackground(tint)
                cursor.setPosition(block.position())
                cursor.setBlockFormat(fmt)
            it = block.begin()
            while not it.atEnd():
                fragment = it.fragment()
                char = fragment.charFormat()
                if char.fontFixedPitch() and not code_block:
                    char.setFontFamilies([mono.family()])
                    char.setBackground(tint)
                    cursor.setPosition(fragment.position())
                    cursor.setPosition(
                        fragment.position() + fragment.length(), QTextCursor.MoveMode.KeepAnchor
                    )
                    cursor.setCharFormat(char)
                it += 1
            block = block.next()

    def _fit(self) -> None:
        self.document().setTextWidth(self.viewport().width())
        height = int(self.document().size().height()) + 2
        if height != self.height():
            self.setFixedHeight(height)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._fit()

    def wheelEvent(self, event: QWheelEvent) -> None:
        event.ignore()  # the transcript around it scrolls


class Bubble(QFrame):
    """One message. An answer grows while it streams; Markdown is re-rendered at most
    every RENDER_MS so a long answer never makes typing lag."""

    def __init__(self, role: str, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.role = role
        self.text = text
        self.note_error = False  # a plain attribute: PySide6 miscounts bools kept as Qt properties
        self.setObjectName("bubble")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(14, 10, 14, 10)
        layout.setSpacing(4)
        head = QHBoxLayout()
        self.who = QLabel("You" if role == "user" else "Hearth", self)
        self.who.setObjectName("who")
        head.addWidget(self.who)
        head.addStretch(1)
        self.copy_button = QToolButton(self)
        self.copy_button.setText("Copy")
        self.copy_button.setAutoRaise(True)
        self.copy_button.setAccessibleName("Copy this answer")
        self.copy_button.setToolTip("Copy this answer to the clipboard")
        self.copy_button.clicked.connect(self.copy)
        self.copy_button.setVisible(role == "assistant" and bool(text))
        head.addWidget(self.copy_button)
        layout.addLayout(head)
        self.body = MarkdownView(self)
        self.body.setObjectName("body")
        self.body.setAccessibleName("You wrote" if role == "user" else "Hearth answered")
        layout.addWidget(self.body)
        self.note = QLabel(self)
        self.note.setObjectName("note")
        self.note.setWordWrap(True)
        self.note.hide()
        layout.addWidget(self.note)
        self._copied = QTimer(self, singleShot=True, interval=1500)
        self._copied.timeout.connect(lambda: self.copy_button.setText("Copy"))
        self._render_timer = QTimer(self, singleShot=True)
        self._render_timer.timeout.connect(self._render)
        self._render()
        self.restyle()

    def append(self, piece: str) -> None:
        self.text += piece
        if not self._render_timer.isActive():
            self._render_timer.start(RENDER_MS)

    def finish(self, note: str = "") -> None:
        self._render_timer.stop()
        self._render()
        self.copy_button.setVisible(self.role == "assistant" and bool(self.text))
        self.set_note(note)

    def fail(self, message: str) -> None:
        self.finish()
        self.set_note(message, error=True)

    def set_note(self, note: str, error: bool = False) -> None:
        self.note.setText(note)
        self.note_error = error
        self.note.setVisible(bool(note))
        self.restyle()

    def copy(self) -> None:
        QGuiApplication.clipboard().setText(self.text)
        self.copy_button.setText("Copied")
        self._copied.start()  # a child timer: it dies with the bubble, never fires after

    def _render(self) -> None:
        if self.text:
            self.body.set_markdown(self.text)
        elif self.role == "assistant":
            self.body.set_markdown("*Thinking…*")

    def restyle(self) -> None:
        pal = QApplication.palette()  # the system's; our own style sheet changes ours
        base = pal.color(QPalette.ColorRole.Base)
        window = pal.color(QPalette.ColorRole.Window)
        accent = pal.color(QPalette.ColorRole.Highlight)
        muted = mix(pal.color(QPalette.ColorRole.Text), base, 0.45)
        if self.role == "user":
            background = mix(base, accent, 0.30 if is_dark(pal) else 0.12)
        else:
            background = mix(window, base, 0.6)
        error = "#F07B7B" if is_dark(pal) else "#B42323"
        note_colour = error if self.note_error else muted.name()
        sheet = (
            f"#bubble {{ background: {background.name()}; border-radius: 10px; }}"
            f" #who {{ font-weight: 600; color: {muted.name()}; }}"
            f" #note {{ color: {note_colour}; font-style: italic; }}"
        )
        if sheet != self.styleSheet():  # setting it sends another PaletteChange
            self.setStyleSheet(sheet)
            self.body.setPalette(pal)  # its own style sheet keeps it from following
            if self.body.markdown:
                self.body.set_markdown(self.body.markdown)  # code tints follow the palette

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:
            self.restyle()


class Transcript(QScrollArea):
    """The bubbles of one conversation, newest at the bottom, following a streaming answer."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setAccessibleName("Conversation")
        self.inner = QWidget(self)
        self.column = QVBoxLayout(self.inner)
        self.column.setContentsMargins(16, 16, 16, 16)
        self.column.setSpacing(12)
        self.empty = QLabel(
            "<h2>Ask Hearth anything</h2><p>It runs on this computer: nothing you type "
            "leaves it.</p><p>Enter sends · Shift+Enter starts a new line · Esc stops an "
            "answer · Ctrl+N starts a new chat.</p>",
            self.inner,
        )
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setWordWrap(True)
        self.empty.setObjectName("empty")
        self.column.addWidget(self.empty, 1)  # fills the view while there is no message
        self.column.addStretch(1)  # keeps messages at the top, newest last
        self.setWidget(self.inner)
        self.bubbles: list[Bubble] = []
        self.verticalScrollBar().rangeChanged.connect(self._follow)
        self._stick = True

    def clear(self) -> None:
        for bubble in self.bubbles:
            bubble.deleteLater()
        self.bubbles = []
        self.empty.show()

    def add(self, role: str, text: str = "") -> Bubble:
        self.empty.hide()
        bubble = Bubble(role, text, self.inner)
        self.column.insertWidget(self.column.count() - 1, bubble)
        self.bubbles.append(bubble)
        self._stick = True
        return bubble

    def _follow(self, _low: int, high: int) -> None:
        bar = self.verticalScrollBar()
        if self._stick or bar.value() >= bar.maximum() - 40:
            bar.setValue(high)
            self._stick = False


class Composer(QPlainTextEdit):
    """Where the user writes: Enter sends, Shift+Enter makes a new line."""

    submit = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setPlaceholderText("Message Hearth  (Enter sends · Shift+Enter: new line)")
        self.setAccessibleName("Message")
        self.setTabChangesFocus(True)
        self.document().contentsChanged.connect(self._fit)
        self._fit()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        enter = event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter)
        if enter and not event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            self.submit.emit()
            return
        super().keyPressEvent(event)

    def _fit(self) -> None:
        """Grow with the text, from one line to about six."""
        line = self.fontMetrics().lineSpacing()
        lines = max(1, min(6, int(self.document().size().height())))
        self.setFixedHeight(lines * line + 2 * int(self.document().documentMargin()) + 8)
