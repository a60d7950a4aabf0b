"""The chat window: conversations from the vault, streamed answers, model and engine.

Everything goes through the DaemonConnection's signals: the window never waits. What
the user typed is never lost: a message that could not be sent goes back into the
composer.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from PySide6.QtCore import QEvent, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QKeySequence, QShortcut, QShowEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from daemon.errors import HearthError
from gui import icons
from gui.connection import DaemonConnection, Reply, State
from gui.transcript import NOTES, Bubble, Composer, Transcript
from gui.widgets import Banner, ElidedLabel, Tone, emphasize, follow_palette, when

log = logging.getLogger("hearth.tray")

ENGINE_NAMES = {"auto": "Auto engine", "llamacpp": "llama.cpp", "mlx": "MLX"}
SEARCH_DELAY_MS = 250


class ChatWindow(QMainWindow):
    generating = Signal(bool)  # an answer started / ended (the tray icon shows it)
    answered = Signal(dict)  # a chat result (the tray refreshes what it shows)

    def __init__(self, connection: DaemonConnection, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.conn = connection
        self.conversation_id: str | None = None
        self.unstored: list[dict[str, str]] = []  # turns of a chat the vault does not keep
        self.reply: Reply | None = None
        self.answer: Bubble | None = None
        self.vault: dict[str, Any] = {}
        self.models: list[dict[str, Any]] = []
        self.delete_box: QMessageBox | None = None
        self.hide_on_close = True  # with a tray icon, closing hides; without, it quits
        self.options: dict[str, Any] = {}  # generation options sent with every message
        self.sent_at = 0.0
        self.was_lost = False  # the daemon went away: say so when it is back
        self.setWindowTitle("Hearth")
        self.setWindowIcon(icons.app_icon())
        self.resize(QSize(920, 640))
        self._build()
        self._wire()
        if self.conn.state is State.CONNECTED:
            self.reload()

    # -- layout --------------------------------------------------------------------------

    def _build(self) -> None:
        split = QSplitter(self)
        split.setChildrenCollapsible(False)
        side = QWidget(split)
        side_layout = QVBoxLayout(side)
        side_layout.setContentsMargins(10, 10, 4, 10)
        self.new_button = QPushButton("New chat", side)
        self.new_button.setAccessibleName("New chat")
        self.new_button.setToolTip(f"Start a new chat ({_keys(QKeySequence.StandardKey.New)})")
        self.search = QLineEdit(side)
        self.search.setPlaceholderText("Search conversations")
        self.search.setAccessibleName("Search conversations")
        self.search.setClearButtonEnabled(True)
        self.list = QListWidget(side)
        self.list.setAccessibleName("Conversations")
        self.list.setWordWrap(True)
        self.list.setUniformItemSizes(False)
        self.list_note = QLabel(side)
        self.list_note.setWordWrap(True)
        self.list_note.setObjectName("muted")
        self.list_note.hide()
        side_layout.addWidget(self.new_button)
        side_layout.addWidget(self.search)
        side_layout.addWidget(self.list, 1)
        side_layout.addWidget(self.list_note)

        main = QWidget(split)
        layout = QVBoxLayout(main)
        layout.setContentsMargins(4, 10, 10, 10)
        head = QHBoxLayout()
        self.title = ElidedLabel("New chat", main)
        self.title.setObjectName("title")
        emphasize(self.title, 2)
        self.model_box = QComboBox(main)
        self.model_box.setAccessibleName("Model")
        self.model_box.setToolTip("The model that answers")
        self.model_box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.engine_box = QComboBox(main)
        self.engine_box.setAccessibleName("Engine")
        self.engine_box.setToolTip("The engine that runs the model")
        self.engine_box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.delete_button = QPushButton("Delete…", main)
        self.delete_button.setAccessibleName("Delete this conversation")
        self.delete_button.setToolTip("Delete this conversation permanently")
        self.delete_button.setEnabled(False)
        head.addWidget(self.title, 1)
        head.addWidget(self.model_box)
        head.addWidget(self.engine_box)
        head.addWidget(self.delete_button)
        layout.addLayout(head)
        self.banner = Banner(main)
        layout.addWidget(self.banner)
        self.transcript = Transcript(main)
        layout.addWidget(self.transcript, 1)
        row = QHBoxLayout()
        self.composer = Composer(main)
        self.send_button = QPushButton("Send", main)
        self.send_button.setAccessibleName("Send")
        self.send_button.setDefault(False)
        self.send_button.setAutoDefault(False)
        self.send_button.setMinimumWidth(84)
        row.addWidget(self.composer, 1)
        row.addWidget(self.send_button, 0, Qt.AlignmentFlag.AlignBottom)
        layout.addLayout(row)
        foot = QHBoxLayout()
        self.keep = QCheckBox("Don't keep this chat", main)
        self.keep.setAccessibleName("Don't keep this chat")
        self.keep.setToolTip("Nothing of this chat is stored, not even its title")
        self.footer = QLabel(main)
        self.footer.setObjectName("muted")
        foot.addWidget(self.keep)
        foot.addStretch(1)
        foot.addWidget(self.footer)
        layout.addLayout(foot)
        split.addWidget(side)
        split.addWidget(main)
        split.setStretchFactor(1, 1)
        split.setSizes([250, 670])
        self.setCentralWidget(split)
        self._search_timer = QTimer(self, singleShot=True)
        self._search_timer.setInterval(SEARCH_DELAY_MS)

    def _wire(self) -> None:
        self.new_button.clicked.connect(self.new_chat)
        self.composer.submit.connect(self.send)
        self.send_button.clicked.connect(self._send_or_stop)
        self.delete_button.clicked.connect(self.ask_delete)
        self.list.itemClicked.connect(self._open_item)
        self.list.itemActivated.connect(self._open_item)
        self.search.textChanged.connect(lambda _: self._search_timer.start())
        self._search_timer.timeout.connect(self.refresh_list)
        self.model_box.currentIndexChanged.connect(self._fill_engines)
        self.keep.toggled.connect(self._keep_toggled)
        QShortcut(QKeySequence.StandardKey.New, self, self.new_chat)
        QShortcut(QKeySequence(Qt.Key.Key_Escape), self, self.stop)
        QShortcut(QKeySequence.StandardKey.Find, self, lambda: self.search.setFocus())
        self.conn.connected.connect(lambda _: self.reload())
        self.conn.disconnected.connect(self._on_disconnected)

    # -- daemon state --------------------------------------------------------------------

    def reload(self) -> None:
        """After (re)connecting: the vault's state, the models, the conversation list."""
        if self.was_lost and self.conn.state is State.CONNECTED:
            self.was_lost = False
            log.info("chat window: says the daemon is back")
            self.banner.show_message("Connected to Hearth again.", Tone.INFO, timeout_ms=6000)
        for method, done in (("vault.status", self._on_vault), ("models.list", self._on_models)):
            reply = self.conn.call(method)
            reply.finished.connect(done)
            reply.failed.connect(self._show_error)

    def _on_disconnected(self, why: str) -> None:
        log.info("chat window: says the daemon is out of reach")
        self.was_lost = True
        self.banner.show_message(f"{why} Reconnecting…", Tone.WARNING, closable=False)

    def _on_vault(self, status: dict[str, Any]) -> None:
        self.vault = status
        self.refresh_list()

    def _history_open(self) -> bool:
        return bool(self.vault) and not self.vault.get("locked")

    def _on_models(self, result: dict[str, Any]) -> None:
        self.models = result.get("models", [])
        current = self.model_box.currentData()
        self.model_box.blockSignals(True)
        self.model_box.clear()
        for model in self.models:
            label = model["name"] + ("  (built-in)" if model.get("builtin") else "")
            self.model_box.addItem(label, model["name"])
        wanted = current or result.get("default")
        index = max(0, self.model_box.findData(wanted))
        self.model_box.setCurrentIndex(index)
        self.model_box.blockSignals(False)
        self._fill_engines()

    def _fill_engines(self) -> None:
        model = self._model_info()
        current = self.engine_box.currentData() or "auto"
        self.engine_box.clear()
        self.engine_box.addItem(ENGINE_NAMES["auto"], "auto")
        for engine in (model or {}).get("engines", []):
            self.engine_box.addItem(ENGINE_NAMES.get(engine, engine), engine)
        self.engine_box.setCurrentIndex(max(0, self.engine_box.findData(current)))

    def _model_info(self) -> dict[str, Any] | None:
        name = self.model_box.currentData()
        return next((m for m in self.models if m["name"] == name), None)

    # -- the conversation list ----------------------------------------------------------

    def refresh_list(self) -> None:
        if not self._history_open():
            self.list.clear()
            reason = self.vault.get("reason")
            self.list_note.setText(
                "History is locked. Unlock it from the tray menu to see your conversations."
                if reason == "passphrase_locked"
                else "History is off: chats are not kept."
            )
            self.list_note.show()
            return
        self.list_note.hide()
        text = self.search.text().strip()
        if text:
            reply = self.conn.call("conversations.search", {"text": text})
            reply.finished.connect(self._show_results)
        else:
            reply = self.conn.call("conversations.list")
            reply.finished.connect(self._show_list)
        reply.failed.connect(self._show_error)

    def _show_list(self, result: dict[str, Any]) -> None:
        self.list.clear()
        if not result.get("conversations"):
            self.list_note.setText("No conversations yet. They are kept encrypted here.")
            self.list_note.show()
        for conv in result.get("conversations", []):
            self._add_item(conv["id"], conv.get("title") or "Untitled", when(conv.get("updated")))
        self._mark_current()

    def _show_results(self, result: dict[str, Any]) -> None:
        self.list.clear()
        seen: set[str] = set()
        for hit in result.get("results", []):
            if hit["conversation"] in seen:
                continue
            seen.add(hit["conversation"])
            self._add_item(hit["conversation"], hit.get("title") or "Untitled", hit["snippet"])
        if not seen:
            self.list_note.setText("No conversation matches.")
            self.list_note.show()

    def _add_item(self, conv_id: str, title: str, detail: str) -> None:
        item = QListWidgetItem(f"{title}\n{detail}" if detail else title)
        item.setData(Qt.ItemDataRole.UserRole, conv_id)
        item.setToolTip(title)
        self.list.addItem(item)

    def _mark_current(self) -> None:
        for i in range(self.list.count()):
            item = self.list.item(i)
            if item.data(Qt.ItemDataRole.UserRole) == self.conversation_id:
                self.list.setCurrentItem(item)
                return
        self.list.clearSelection()

    def _open_item(self, item: QListWidgetItem) -> None:
        self.open_conversation(str(item.data(Qt.ItemDataRole.UserRole)))

    def open_conversation(self, conv_id: str) -> None:
        self.stop()
        reply = self.conn.call("conversations.get", {"id": conv_id})
        reply.finished.connect(self._show_conversation)
        reply.failed.connect(self._show_error)

    def _show_conversation(self, conv: dict[str, Any]) -> None:
        self.conversation_id = conv["id"]
        self.unstored = []
        self.keep.setChecked(False)
        self.title.setText(conv.get("title") or "Untitled")
        self.transcript.clear()
        for message in conv.get("messages", []):
            if message["role"] in ("user", "assistant"):
                self.transcript.add(message["role"], message["content"]).finish()
        self.delete_button.setEnabled(True)
        started = when(conv.get("created"))
        self.footer.setText(f"Started {started}" if started else "")
        self.composer.setFocus()

    # -- sending ------------------------------------------------------------------------

    def new_chat(self) -> None:
        self.stop()
        self.conversation_id = None
        self.unstored = []
        self.title.setText("New chat")
        self.transcript.clear()
        self.delete_button.setEnabled(False)
        self.footer.clear()
        self.list.clearSelection()
        self.composer.setFocus()

    def _send_or_stop(self) -> None:
        if self.reply is not None:
            self.stop()
        else:
            self.send()

    def send(self) -> None:
        text = self.composer.toPlainText().strip()
        if not text or self.reply is not None:
            return
        store = not self.keep.isChecked() and self._history_open()
        message = {"role": "user", "content": text}
        params: dict[str, Any] = {"store": store, "model": self.model_box.currentData()}
        options = dict(self.options)
        engine = self.engine_box.currentData()
        if engine and engine != "auto":
            options["engine"] = engine
        if options:
            params["options"] = options
        if store:
            params.update(messages=[message], conversation_id=self.conversation_id)
        else:
            params["messages"] = [*self.unstored, message]
        self.composer.clear()
        self.transcript.add("user", text).finish()
        if not store and not self.keep.isChecked():
            self.banner.show_message(
                "This chat is not being kept: history is off or locked.", Tone.INFO,
                timeout_ms=6000,
            )  # fmt: skip
        self.answer = self.transcript.add("assistant")
        self.reply = self.conn.call("chat", params)
        self.sent_at = time.monotonic()
        self.reply.delta.connect(self._on_delta)
        self.reply.finished.connect(lambda r: self._on_answer(r, message))
        self.reply.failed.connect(lambda e: self._on_failed(e, text))
        self._set_busy(True)

    def _on_delta(self, params: dict[str, Any]) -> None:
        if self.answer is not None:
            if not self.answer.text:
                log.info("chat: first words after %.1f s", time.monotonic() - self.sent_at)
            self.answer.append(params.get("text", ""))

    def stop(self) -> None:
        if self.reply is not None and not self.reply.done:
            self.reply.cancel()

    def _on_answer(self, result: dict[str, Any], message: dict[str, str]) -> None:
        bubble, self.answer, self.reply = self.answer, None, None
        reason = result.get("finish_reason", "stop")
        note = NOTES.get(reason, "")
        dropped = (result.get("context") or {}).get("dropped_turns")
        if dropped:
            note = f"{note} The oldest {dropped} turn(s) were left out to fit the model.".strip()
        if bubble is not None:
            bubble.finish(note)
        log.info(
            "chat: answer shown (%d chars, finish %s, stored %s)",
            len(result.get("text", "")), reason, result.get("stored"),
        )  # fmt: skip
        if result.get("stored"):
            if self.conversation_id is None:
                self.title.setText(message["content"].split("\n", 1)[0][:80])
            self.conversation_id = result.get("conversation_id")
            self.delete_button.setEnabled(True)
            self.refresh_list()
        else:
            self.unstored += [message, {"role": "assistant", "content": result.get("text", "")}]
        timings = result.get("timings") or {}
        rate = timings.get("tokens_per_s")
        engine = ENGINE_NAMES.get(result.get("engine", ""), result.get("engine", ""))
        speed = f"{rate:.1f} tokens/s" if rate and rate < 10 else f"{rate:.0f} tokens/s"
        parts = [result.get("model", ""), engine, speed if rate else ""]
        self.footer.setText(" · ".join(p for p in parts if p))
        self._set_busy(False)
        self.answered.emit(result)

    def _on_failed(self, error: HearthError, text: str) -> None:
        bubble, self.answer, self.reply = self.answer, None, None
        if bubble is not None:
            bubble.fail(f"Hearth could not answer: {error.message}")
        if not self.composer.toPlainText().strip():
            self.composer.setPlainText(text)  # nothing typed is lost
        log.warning("chat failed: %s", error.kind)
        self._set_busy(False)

    def _set_busy(self, busy: bool) -> None:
        self.send_button.setText("Stop" if busy else "Send")
        self.send_button.setAccessibleName("Stop the answer" if busy else "Send")
        self.send_button.setToolTip("Stop the answer (Esc)" if busy else "Send (Enter)")
        self.model_box.setEnabled(not busy)
        self.engine_box.setEnabled(not busy)
        self.generating.emit(busy)

    def _keep_toggled(self, dont_keep: bool) -> None:
        if dont_keep and self.conversation_id is not None:
            self.new_chat()  # a kept conversation cannot become unkept: start afresh
            self.keep.setChecked(True)

    def _show_error(self, error: HearthError) -> None:
        """Every failed request ends here or in its bubble: never a silent window."""
        if error.kind == "daemon_unavailable" and self.was_lost:
            return  # the banner already says the daemon is out of reach
        self.banner.show_message(error.message, Tone.ERROR)

    # -- deleting -----------------------------------------------------------------------

    def ask_delete(self) -> None:
        if self.conversation_id is None:
            return
        box = QMessageBox(self)
        box.setIcon(QMessageBox.Icon.Warning)
        box.setWindowTitle("Delete conversation")
        box.setText(f"Delete “{self.title.full}” permanently?")
        box.setInformativeText(
            "Hearth destroys its encryption key (crypto-shredding): it cannot be recovered, "
            "not even from a backup of the vault."
        )
        delete = box.addButton("Delete permanently", QMessageBox.ButtonRole.DestructiveRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        conv_id = self.conversation_id

        def done(_: int) -> None:
            if box.clickedButton() is delete:
                self.delete(conv_id)

        box.finished.connect(done)
        self.delete_box = box
        box.open()  # window-modal, never a nested event loop

    def delete(self, conv_id: str) -> None:
        reply = self.conn.call("conversations.delete", {"id": conv_id})
        reply.finished.connect(lambda _: self._deleted(conv_id))
        reply.failed.connect(self._show_error)

    def _deleted(self, conv_id: str) -> None:
        if self.conversation_id == conv_id:
            self.new_chat()
        self.banner.show_message("Conversation deleted for good.", Tone.INFO, timeout_ms=4000)
        self.refresh_list()

    # -- window --------------------------------------------------------------------------

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        follow_palette(self, event)

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self.composer.setFocus()

    def closeEvent(self, event: QCloseEvent) -> None:
        """Closing hides the window; the tray stays, and so does an answer in progress."""
        if not self.hide_on_close:
            super().closeEvent(event)
            return
        event.ignore()
        self.hide()


def _keys(key: QKeySequence.StandardKey) -> str:
    return QKeySequence(key).toString(QKeySequence.SequenceFormat.NativeText)
