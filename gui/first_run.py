"""First run and a locked vault: keep history under a passphrase, unlock, the model
(gui/model_choice.py: the tiny one, and the catalog model recommended here).

Asked once each: the answers live in the tray's own small state file (no user text),
so "chat without history" or "got it" are not asked again at every start.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QLabel,
    QLayout,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

from daemon.errors import HearthError
from gui import icons
from gui.connection import DaemonConnection
from gui.model_choice import ModelChoice
from gui.widgets import emphasize

MIN_PASSPHRASE = 8


class TrayState:
    """The tray's remembered answers (tray.json in the data dir), written atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.values: dict[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError):
            self.values = {}

    def get(self, key: str) -> bool:
        return bool(self.values.get(key))

    def set(self, key: str, value: bool = True) -> None:
        self.values[key] = value
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tray-", dir=self.path.parent)
        with os.fdopen(fd, "w") as out:
            json.dump(self.values, out)
        os.replace(tmp, self.path)


def _intro(dialog: QDialog, title: str, headline: str, body: str) -> QVBoxLayout:
    """A dialog's layout, opened by a bold headline and its explanation. The layout
    sizes the dialog to its wrapped text (SetFixedSize), so no line is ever clipped."""
    dialog.setWindowTitle(title)
    dialog.setWindowIcon(icons.app_icon())
    layout = QVBoxLayout(dialog)
    layout.setContentsMargins(20, 18, 20, 16)
    layout.setSpacing(10)
    layout.setSizeConstraint(QLayout.SizeConstraint.SetFixedSize)
    head = QLabel(headline, dialog)
    head.setWordWrap(True)
    emphasize(head, 1.5)
    text = QLabel(body, dialog)
    text.setWordWrap(True)
    text.setTextFormat(Qt.TextFormat.RichText)
    for label in (head, text):
        label.setFixedWidth(460)
        layout.addWidget(label)
    return layout


class HistoryDialog(QDialog):
    """No keychain here: protect history with a passphrase, or chat without keeping it."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = _intro(
            self,
            "Keep your conversations?",
            "Hearth can keep your conversations, encrypted on this computer.",
            "This computer has no keychain to hold the key, so a passphrase protects them "
            "instead. You will type it once after each restart. Without it nobody, Hearth "
            "included, can read them: if you forget it, they are lost.",
        )
        form = QFormLayout()
        self.passphrase = QLineEdit(self)
        self.passphrase.setEchoMode(QLineEdit.EchoMode.Password)
        self.passphrase.setAccessibleName("Passphrase")
        self.confirm = QLineEdit(self)
        self.confirm.setEchoMode(QLineEdit.EchoMode.Password)
        self.confirm.setAccessibleName("Passphrase again")
        form.addRow("Passphrase", self.passphrase)
        form.addRow("Again", self.confirm)
        layout.addLayout(form)
        self.error = QLabel(self)
        self.error.setStyleSheet("color: #D9534F;")
        self.error.setWordWrap(True)
        self.error.hide()
        layout.addWidget(self.error)
        buttons = QDialogButtonBox(self)
        self.protect = buttons.addButton(
            "Protect with this passphrase", QDialogButtonBox.ButtonRole.AcceptRole
        )
        self.without = buttons.addButton(
            "Chat without history", QDialogButtonBox.ButtonRole.RejectRole
        )
        self.protect.setDefault(True)
        layout.addWidget(buttons)
        self.without.clicked.connect(self.reject)

    def problem(self) -> str | None:
        text = self.passphrase.text()
        if len(text) < MIN_PASSPHRASE:
            return f"Use at least {MIN_PASSPHRASE} characters."
        if text != self.confirm.text():
            return "The two passphrases differ."
        return None

    def show_error(self, message: str) -> None:
        self.error.setText(message)
        self.error.show()
        self.protect.setEnabled(True)


class UnlockDialog(QDialog):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = _intro(
            self,
            "Unlock your history",
            "Your conversations are locked.",
            "Type your passphrase to open them. Until then you can still chat; those chats "
            "are not kept.",
        )
        self.passphrase = QLineEdit(self)
        self.passphrase.setEchoMode(QLineEdit.EchoMode.Password)
        self.passphrase.setAccessibleName("Passphrase")
        self.passphrase.setPlaceholderText("Passphrase")
        layout.addWidget(self.passphrase)
        self.error = QLabel(self)
        self.error.setStyleSheet("color: #D9534F;")
        self.error.hide()
        layout.addWidget(self.error)
        buttons = QDialogButtonBox(self)
        self.unlock = buttons.addButton("Unlock", QDialogButtonBox.ButtonRole.AcceptRole)
        later = buttons.addButton("Not now", QDialogButtonBox.ButtonRole.RejectRole)
        self.unlock.setDefault(True)
        later.clicked.connect(self.reject)
        layout.addWidget(buttons)

    def show_error(self, message: str) -> None:
        self.error.setText(message)
        self.error.show()
        self.passphrase.selectAll()
        self.passphrase.setFocus()
        self.unlock.setEnabled(True)


class FirstRun(QObject):
    """Runs the dialogs a vault's state calls for, each time the daemon connects."""

    vaultChanged = Signal(dict)  # the vault's status after a dialog changed it

    def __init__(
        self, connection: DaemonConnection, state: TrayState, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.conn = connection
        self.state = state
        self.parent_widget = parent
        self.history_dialog: HistoryDialog | None = None
        self.unlock_dialog: UnlockDialog | None = None
        self.intro_dialog: QDialog | None = None
        self.endpoint: str | None = None  # the hub models are pulled from (None: the default)

    def check(self) -> None:
        self.conn.call("vault.status").finished.connect(self._on_status)

    def _on_status(self, status: dict[str, Any]) -> None:
        reason = status.get("reason")
        if reason == "not_initialized" and not self.state.get("declined_history"):
            self.ask_history()
        elif reason == "passphrase_locked":
            self.ask_unlock()
        else:
            self.intro_model()

    def ask_history(self) -> None:
        if self.history_dialog is not None and self.history_dialog.isVisible():
            return
        dialog = HistoryDialog(self.parent_widget)
        self.history_dialog = dialog

        def protect() -> None:
            problem = dialog.problem()
            if problem:
                dialog.show_error(problem)
                return
            dialog.protect.setEnabled(False)
            reply = self.conn.call("vault.init", {"passphrase": dialog.passphrase.text()})
            reply.finished.connect(lambda status: self._done(dialog, status))
            reply.failed.connect(lambda e: dialog.show_error(e.message))

        def declined() -> None:
            if dialog.result() == QDialog.DialogCode.Rejected:
                self.state.set("declined_history")
                self.intro_model()

        dialog.protect.clicked.connect(protect)
        dialog.finished.connect(lambda _: declined())
        dialog.show()

    def ask_unlock(self) -> None:
        if self.unlock_dialog is not None and self.unlock_dialog.isVisible():
            return
        dialog = UnlockDialog(self.parent_widget)
        self.unlock_dialog = dialog

        def unlock() -> None:
            dialog.unlock.setEnabled(False)
            reply = self.conn.call("vault.unlock", {"passphrase": dialog.passphrase.text()})
            reply.finished.connect(lambda status: self._done(dialog, status))
            reply.failed.connect(lambda e: dialog.show_error(_unlock_error(e)))

        dialog.unlock.clicked.connect(unlock)
        dialog.passphrase.returnPressed.connect(unlock)
        dialog.show()
        dialog.passphrase.setFocus()

    def _done(self, dialog: QDialog, status: dict[str, Any]) -> None:
        dialog.accept()
        self.vaultChanged.emit(status)
        self.intro_model()

    def intro_model(self) -> None:
        if self.state.get("seen_model_intro") or self.intro_dialog is not None:
            return
        self.conn.call("models.list").finished.connect(self._maybe_intro)

    def offer_model(self) -> None:
        """The model screen again, on request (Model ▸ Download a better model…)."""
        if self.intro_dialog is not None and self.intro_dialog.isVisible():
            self.intro_dialog.raise_()
        else:
            self._show_model_choice()

    def _maybe_intro(self, result: dict[str, Any]) -> None:
        default = next(
            (m for m in result.get("models", []) if m["name"] == result.get("default")), None
        )
        if default is None or not default.get("builtin") or self.intro_dialog is not None:
            return
        self._show_model_choice()

    def _show_model_choice(self) -> None:
        dialog = ModelChoice(self.conn, self.parent_widget, self.endpoint, self._import)
        dialog.setWindowIcon(icons.app_icon())
        dialog.finished.connect(lambda _: self.state.set("seen_model_intro"))
        dialog.setWindowModality(Qt.WindowModality.NonModal)
        self.intro_dialog = dialog
        dialog.show()

    def _import(self, dialog: QDialog) -> None:
        path, _ = QFileDialog.getOpenFileName(
            dialog, "Import a model", "", "GGUF models (*.gguf);;All files (*)"
        )
        if not path:
            return
        reply = self.conn.call("models.import", {"path": path})
        reply.finished.connect(
            lambda m: self.conn.call("prefs.set", {"key": "default_model", "value": m["name"]})
        )
        reply.finished.connect(lambda _: dialog.accept())


def _unlock_error(error: HearthError) -> str:
    if error.kind == "wrong_passphrase":
        return "That passphrase does not match. Try again."
    return error.message
