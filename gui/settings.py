"""Settings: model and engine, keep-alive, history, rewrite presets, hotkeys, network.

Every change is sent to the daemon at once (it persists them: config.toml for its own
settings, the vault for privacy settings, the egress policy file for the network), and
the result is shown in the status line. Nothing here writes a file itself.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QKeySequenceEdit,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QRadioButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from daemon.errors import HearthError
from gui import icons
from gui.connection import DaemonConnection, Reply
from gui.hotkeys import DEFAULTS, PRESET_PREFIX, HotkeyService
from gui.presets_tab import PresetsTab
from gui.widgets import Banner, Tone, emphasize, follow_palette

KEEP_ALIVE = [("Unload at once", 0), ("1 minute", 60), ("5 minutes", 300),
              ("30 minutes", 1800), ("2 hours", 7200), ("Keep loaded", -1)]  # fmt: skip
RETENTION = [("Forever", None), ("1 day", 1), ("1 week", 7), ("30 days", 30),
             ("90 days", 90), ("1 year", 365)]  # fmt: skip
HOTKEYS = [("rewrite", "Rewrite the selected text"), ("open_chat", "Open the chat window")]
MODES = [("offline", "Offline: nothing leaves this computer"),
         ("allow-listed", "Only the hosts below"),
         ("ask", "Ask each time (refused until Hearth can ask)")]  # fmt: skip


class SettingsWindow(QDialog):
    hotkeys_saved = Signal(dict)  # the [hotkeys] table as saved: the tray binds it

    def __init__(
        self, connection: DaemonConnection, hotkeys: HotkeyService | None = None,
        parent: QWidget | None = None,
    ) -> None:  # fmt: skip
        super().__init__(parent)
        self.conn = connection
        self.hotkeys = hotkeys
        self.setWindowTitle("Hearth Settings")
        self.setWindowIcon(icons.app_icon())
        self.resize(620, 520)
        self.pending = 0  # requests not answered yet (tests wait for 0)
        layout = QVBoxLayout(self)
        self.banner = Banner(self)
        layout.addWidget(self.banner)
        self.tabs = QTabWidget(self)
        self.tabs.addTab(self._model_tab(), "Model")
        self.tabs.addTab(self._history_tab(), "History")
        self.presets_tab = PresetsTab(self._call, self)
        self.tabs.addTab(self.presets_tab, "Rewrite presets")
        self.tabs.addTab(self._hotkeys_tab(), "Hotkeys")
        self.tabs.addTab(self._network_tab(), "Network")
        layout.addWidget(self.tabs, 1)
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        close.rejected.connect(self.close)
        layout.addWidget(close)
        self.conn.connected.connect(lambda _: self.load())
        self.load()

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        follow_palette(self, event)

    # -- tabs ----------------------------------------------------------------------------

    def _model_tab(self) -> QWidget:
        tab = QWidget()
        form = QFormLayout(tab)
        self.model_box = QComboBox(tab)
        self.model_box.setAccessibleName("Default model")
        self.engine_box = QComboBox(tab)
        self.engine_box.setAccessibleName("Engine")
        for label, value in (("Automatic", "auto"), ("llama.cpp", "llamacpp"), ("MLX", "mlx")):
            self.engine_box.addItem(label, value)
        self.keep_alive = QComboBox(tab)
        self.keep_alive.setAccessibleName("Keep the model loaded")
        for label, seconds in KEEP_ALIVE:
            self.keep_alive.addItem(label, seconds)
        self.import_button = QPushButton("Import a model file…", tab)
        self.import_button.setAccessibleName("Import a model file")
        note = QLabel(
            "A model stays in memory this long after its last answer, so the next one "
            "starts at once. Import a GGUF file or an MLX folder to use a bigger model.",
            tab,
        )
        note.setWordWrap(True)
        form.addRow("Default model", self.model_box)
        form.addRow("Engine", self.engine_box)
        form.addRow("Keep loaded", self.keep_alive)
        form.addRow("", self.import_button)
        form.addRow(note)
        self.model_box.activated.connect(
            lambda _: self._set_pref("default_model", self.model_box.currentData())
        )
        self.engine_box.activated.connect(
            lambda _: self._set_pref("engine", self.engine_box.currentData())
        )
        self.keep_alive.activated.connect(
            lambda _: self._set_pref("keep_alive", self.keep_alive.currentData())
        )
        self.import_button.clicked.connect(self._import)
        return tab

    def _history_tab(self) -> QWidget:
        tab = QWidget()
        form = QFormLayout(tab)
        self.keep_history = QCheckBox("Keep my conversations (encrypted on this computer)", tab)
        self.keep_history.setAccessibleName("Keep history")
        self.retention = QComboBox(tab)
        self.retention.setAccessibleName("Delete conversations older than")
        for label, days in RETENTION:
            self.retention.addItem(label, days)
        self.history_note = QLabel(tab)
        self.history_note.setWordWrap(True)
        form.addRow(self.keep_history)
        form.addRow("Keep them for", self.retention)
        form.addRow(self.history_note)
        self.keep_history.clicked.connect(
            lambda on: self._call("settings.set", {"key": "keep_history", "value": on})
        )
        self.retention.activated.connect(self._set_retention)
        return tab

    def _hotkeys_tab(self) -> QWidget:
        """One row per action: the tray's own, then "rewrite with <preset>" for each
        preset (optional). Each row says whether its hotkey works, and if not, why."""
        tab = QWidget()
        self.hotkey_form = QFormLayout(tab)
        self.hotkey_edits: dict[str, QKeySequenceEdit] = {}
        self.hotkey_status: dict[str, QLabel] = {}
        note = QLabel(
            "Global hotkeys work in every application: select some text anywhere, press "
            "the rewrite hotkey, and pick Replace. On Wayland desktops without the global "
            "shortcuts portal, bind the command `hearth rewrite --selection` to a shortcut "
            "in your desktop's keyboard settings instead."
        )
        note.setWordWrap(True)
        self.hotkey_form.addRow(note)
        for action, label in HOTKEYS:
            self._hotkey_row(action, label)
        if self.hotkeys is not None:
            self.hotkeys.changed.connect(self._show_hotkey_status)
        return tab

    def _hotkey_row(self, action: str, label: str) -> None:
        edit = QKeySequenceEdit(self)
        edit.setAccessibleName(label)
        edit.setClearButtonEnabled(True)
        edit.setMaximumSequenceLength(1)
        edit.editingFinished.connect(self._save_hotkeys)
        status = QLabel(self)
        status.setWordWrap(True)
        status.setAccessibleName(f"{label}: status")
        self.hotkey_edits[action] = edit
        self.hotkey_status[action] = status
        self.hotkey_form.addRow(label, edit)
        self.hotkey_form.addRow("", status)

    def _show_hotkey_rows(self, presets: list[dict[str, Any]]) -> None:
        """A row per preset (added as presets appear; a removed one's row goes)."""
        names = {PRESET_PREFIX + p["name"]: p["name"] for p in presets}
        for action in [a for a in self.hotkey_edits if a.startswith(PRESET_PREFIX)]:
            if action not in names:
                self.hotkey_form.removeRow(self.hotkey_edits.pop(action))
                self.hotkey_form.removeRow(self.hotkey_status.pop(action))
        for action, name in names.items():
            if action not in self.hotkey_edits:
                self._hotkey_row(action, f"Rewrite with “{name}”")

    def _show_hotkey_status(self) -> None:
        for action, label in self.hotkey_status.items():
            problem = self.hotkeys.problems.get(action, "") if self.hotkeys else ""
            active = self.hotkeys is not None and action in self.hotkeys.sequences
            if problem:
                label.setText(f"Not available: {problem}")
                label.setStyleSheet("color: #D93636;")  # the error accent of gui/widgets.py
            else:
                label.setText("Active" if active else "")
                label.setStyleSheet("")
            label.setVisible(bool(label.text()))

    def _network_tab(self) -> QWidget:
        tab = QWidget()
        layout = QVBoxLayout(tab)
        self.mode_buttons: dict[str, QRadioButton] = {}
        for mode, label in MODES:
            button = QRadioButton(label, tab)
            button.setAccessibleName(label)
            button.clicked.connect(lambda _=False, m=mode: self._call("net.set_mode", {"mode": m}))
            self.mode_buttons[mode] = button
            layout.addWidget(button)
        self.hosts = QListWidget(tab)
        self.hosts.setAccessibleName("Allowed hosts")
        self.hosts.setMaximumHeight(110)
        row = QHBoxLayout()
        self.host_edit = QLineEdit(tab)
        self.host_edit.setPlaceholderText("host, *.domain or IP")
        self.host_edit.setAccessibleName("Host to allow")
        self.allow_button = allow = QPushButton("Allow", tab)
        revoke = QPushButton("Remove", tab)
        row.addWidget(self.host_edit, 1)
        row.addWidget(allow)
        row.addWidget(revoke)
        hosts_label = QLabel("Allowed hosts", tab)
        emphasize(hosts_label, 0.5)
        layout.addSpacing(8)
        layout.addWidget(hosts_label)
        layout.addWidget(self.hosts)
        layout.addLayout(row)
        remote_label = QLabel("Remote model (optional, an OpenAI-compatible server)", tab)
        emphasize(remote_label, 0.5)
        layout.addSpacing(8)
        layout.addWidget(remote_label)
        remote = QFormLayout()
        self.remote_url = QLineEdit(tab)
        self.remote_url.setPlaceholderText("https://api.example.com/v1 (OpenAI-compatible)")
        self.remote_url.setAccessibleName("Remote server URL")
        self.remote_model = QLineEdit(tab)
        self.remote_model.setAccessibleName("Remote model")
        self.remote_key = QLineEdit(tab)
        self.remote_key.setEchoMode(QLineEdit.EchoMode.Password)
        self.remote_key.setAccessibleName("API key")
        self.remote_key.setPlaceholderText("kept in the keychain; never shown again")
        save_remote = QPushButton("Save remote model", tab)
        remote.addRow("Remote server", self.remote_url)
        remote.addRow("Model", self.remote_model)
        remote.addRow("API key", self.remote_key)
        remote.addRow("", save_remote)
        layout.addLayout(remote)
        layout.addStretch(1)
        allow.clicked.connect(lambda: self._host("net.allow"))
        revoke.clicked.connect(lambda: self._host("net.revoke"))
        save_remote.clicked.connect(self._save_remote)
        return tab

    # -- loading -------------------------------------------------------------------------

    def load(self) -> None:
        self._call("prefs.get", quiet=True).finished.connect(self._show_prefs)
        self._call("models.list", quiet=True).finished.connect(self._show_models)
        self._call("settings.get", quiet=True).finished.connect(self._show_history)
        self._call("net.status", quiet=True).finished.connect(self._show_network)

    def _show_prefs(self, result: dict[str, Any]) -> None:
        prefs = result["prefs"]
        self.prefs = prefs
        self.engine_box.setCurrentIndex(max(0, self.engine_box.findData(prefs["engine"])))
        index = self.keep_alive.findData(prefs["keep_alive"])
        if index < 0 and prefs["keep_alive"] < 0:
            index = self.keep_alive.findData(-1)
        if index < 0:
            self.keep_alive.addItem(f"{prefs['keep_alive']:g} seconds", prefs["keep_alive"])
            index = self.keep_alive.count() - 1
        self.keep_alive.setCurrentIndex(index)
        self._show_hotkey_rows(result["presets"])
        hotkeys = {**DEFAULTS, **prefs["hotkeys"]}
        for action, edit in self.hotkey_edits.items():
            edit.setKeySequence(QKeySequence(hotkeys.get(action, "")))
        self._show_hotkey_status()
        self.presets_tab.show_presets(result)
        self._select_default_model()

    def _show_models(self, result: dict[str, Any]) -> None:
        self.model_box.clear()
        for model in result.get("models", []):
            label = model["name"] + ("  (built-in)" if model.get("builtin") else "")
            self.model_box.addItem(label, model["name"])
        self.default_model = result.get("default")
        self._select_default_model()

    def _select_default_model(self) -> None:
        name = getattr(self, "default_model", None)
        if name:
            self.model_box.setCurrentIndex(max(0, self.model_box.findData(name)))

    def _show_history(self, result: dict[str, Any]) -> None:
        settings = result["settings"]
        self.keep_history.setChecked(bool(settings["keep_history"]))
        index = self.retention.findData(settings["retention_days"])
        if index < 0:
            self.retention.addItem(
                f"{settings['retention_days']:g} days", settings["retention_days"]
            )
            index = self.retention.count() - 1
        self.retention.setCurrentIndex(index)
        self.history_note.setText(
            "Deleting is permanent: a deleted conversation's key is destroyed."
        )

    def _show_network(self, status: dict[str, Any]) -> None:
        button = self.mode_buttons.get(status.get("mode", ""))
        if button is not None:
            button.setChecked(True)
        self.hosts.clear()
        for rule in status.get("rules", []):
            caller = rule.get("caller", "*")
            text = rule["host"] if caller == "*" else f"{rule['host']}  (only for {caller})"
            item = QListWidgetItem(text)
            item.setData(Qt.ItemDataRole.UserRole, rule)
            self.hosts.addItem(item)
        remote = status.get("remote") or {}
        self.remote_url.setText(remote.get("url") or "")
        self.remote_model.setText(remote.get("model") or "")
        self.remote_key.setPlaceholderText(
            "a key is stored (type to replace)" if remote.get("api_key_set") else "none"
        )

    # -- changes -------------------------------------------------------------------------

    def _call(
        self, method: str, params: dict[str, Any] | None = None, quiet: bool = False
    ) -> Reply:
        reply = self.conn.call(method, params)
        self.pending += 1

        def done(_: object) -> None:
            self.pending -= 1
            if not quiet:
                self.banner.show_message("Saved.", Tone.INFO, timeout_ms=2500)

        def failed(error: HearthError) -> None:
            self.pending -= 1
            self.banner.show_message(error.message, Tone.ERROR)
            self.load()  # show what is really in effect

        reply.finished.connect(done)
        reply.failed.connect(failed)
        return reply

    def _set_pref(self, key: str, value: Any) -> None:
        self._call("prefs.set", {"key": key, "value": value})

    def _set_retention(self) -> None:
        reply = self._call(
            "settings.set", {"key": "retention_days", "value": self.retention.currentData()}
        )
        reply.finished.connect(self._purged)

    def _purged(self, result: dict[str, Any]) -> None:
        if result.get("purged"):
            self.banner.show_message(
                f"Saved. {result['purged']} older conversation(s) were deleted for good.",
                Tone.INFO,
            )

    def _save_hotkeys(self) -> None:
        saved = getattr(self, "prefs", {}).get("hotkeys", {})
        keys = {}
        for action, edit in self.hotkey_edits.items():
            sequence = edit.keySequence().toString(QKeySequence.SequenceFormat.PortableText)
            if sequence or action in DEFAULTS or action in saved:  # "" turns one off
                keys[action] = sequence
        reply = self._call("prefs.set", {"key": "hotkeys", "value": keys})
        reply.finished.connect(lambda r: self.hotkeys_saved.emit(r["value"]))

    def _host(self, method: str) -> None:
        host = self.host_edit.text().strip()
        if not host and method == "net.revoke" and self.hosts.currentItem() is not None:
            rule = self.hosts.currentItem().data(Qt.ItemDataRole.UserRole)
            params = {"host": rule["host"], "caller": rule.get("caller", "*")}
        elif host:
            params = {"host": host}
        else:
            self.banner.show_message("Type a host name first.", Tone.WARNING, timeout_ms=4000)
            return
        self._call(method, params).finished.connect(self._show_network)
        self.host_edit.clear()

    def _save_remote(self) -> None:
        url = self.remote_url.text().strip()
        params: dict[str, Any] = {"url": url or None, "model": self.remote_model.text().strip()}
        if self.remote_key.text():
            params["api_key"] = self.remote_key.text()
        self._call("net.remote", params).finished.connect(self._show_network)
        self.remote_key.clear()

    def _import(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Import a model", "", "GGUF models (*.gguf);;All files (*)"
        )
        if path:
            self.import_model(path)

    def import_model(self, path: str) -> None:
        self.banner.show_message("Checking and importing the model…", Tone.INFO)
        reply = self._call("models.import", {"path": path})
        reply.finished.connect(lambda m: self._set_pref("default_model", m["name"]))
        reply.finished.connect(lambda _: self.load())
