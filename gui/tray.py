"""The tray icon and its menu, rebuilt from the latest snapshot each time it opens.

The menu is a list of sections, each a function that adds its items: the plugin host
(issue 14) adds a "Plugins ▸" section the same way, without touching the others.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject
from PySide6.QtGui import QAction, QActionGroup
from PySide6.QtWidgets import QMenu, QSystemTrayIcon

from gui import icons
from gui.connection import State

if TYPE_CHECKING:
    from gui.app import Hearth

Section = Callable[[QMenu], None]

TOOLTIPS = {
    icons.Look.IDLE: "Hearth: ready",
    icons.Look.GENERATING: "Hearth: answering…",
    icons.Look.OFFLINE: "Hearth: not running",
    icons.Look.LOCKED: "Hearth: history locked",
    icons.Look.ERROR: "Hearth: something went wrong",
}


class Tray(QObject):
    def __init__(self, hearth: Hearth) -> None:
        super().__init__(hearth)
        self.hearth = hearth
        self.icon = QSystemTrayIcon(self)
        self.menu = QMenu()
        self.menu.setAccessibleName("Hearth menu")
        self.icon.setContextMenu(self.menu)
        self.menu.aboutToShow.connect(self.rebuild)
        self.icon.activated.connect(self._activated)
        self.sections: list[Section] = [
            self._chat_section,
            self._model_section,
            self._privacy_section,
            self._app_section,
        ]
        self.look = icons.Look.OFFLINE
        self.show_look(icons.Look.OFFLINE, "")
        self.fill()

    def add_section(self, section: Section, before_app: bool = True) -> None:
        """Add a menu section (e.g. Plugins ▸); it goes above Settings and Quit."""
        self.sections.insert(len(self.sections) - 1 if before_app else len(self.sections), section)

    def show_look(self, look: icons.Look, detail: str) -> None:
        if look is not self.look or self.icon.icon().isNull():
            self.icon.setIcon(icons.icon(look))
        self.look = look
        self.icon.setToolTip(f"{TOOLTIPS[look]}{' · ' + detail if detail else ''}")

    def notify(self, title: str, text: str, error: bool = False) -> None:
        kind = (
            QSystemTrayIcon.MessageIcon.Warning
            if error
            else QSystemTrayIcon.MessageIcon.Information
        )
        self.icon.showMessage(title, text, kind, 6000)

    # -- the menu ------------------------------------------------------------------------

    def rebuild(self) -> None:
        """Fill the menu from the last snapshot (as it opens), and ask for a fresh one."""
        self.fill()
        self.hearth.refresh()

    def fill(self) -> None:
        self.menu.clear()
        for i, section in enumerate(self.sections):
            if i:
                self.menu.addSeparator()
            section(self.menu)

    def _chat_section(self, menu: QMenu) -> None:
        menu.addAction("Open chat", self.hearth.show_chat)
        rewrite = menu.addMenu("Rewrite clipboard")
        rewrite.aboutToShow.connect(lambda: self._fill_presets(rewrite))
        self._fill_presets(rewrite)
        rewrite.setEnabled(self.hearth.conn.state is State.CONNECTED)

    def _fill_presets(self, sub: QMenu) -> None:
        """Submenus refill as they open: by then the refresh asked for on the main
        menu's aboutToShow has usually arrived. A visible menu is never cleared."""
        sub.clear()
        presets: list[dict[str, Any]] = self.hearth.snapshot.get("presets", [])
        for preset in presets:
            action = sub.addAction(preset["name"])
            action.setToolTip(preset["instruction"])
            action.triggered.connect(
                lambda _=False, name=preset["name"]: self.hearth.rewrite_clipboard(name)
            )
        if not presets:
            sub.addAction("No presets yet").setEnabled(False)

    def _model_section(self, menu: QMenu) -> None:
        sub = menu.addMenu("Model")
        sub.aboutToShow.connect(lambda: self._fill_models(sub))
        self._fill_models(sub)
        sub.setEnabled(self.hearth.conn.state is State.CONNECTED)

    def _fill_models(self, sub: QMenu) -> None:
        sub.clear()
        status = self.hearth.snapshot.get("status") or {}
        runners = status.get("runners", [])
        loaded = ", ".join(f"{r['model']} ({r['engine']})" for r in runners)
        info = sub.addAction(f"Loaded: {loaded}" if loaded else "No model loaded")
        info.setEnabled(False)
        sub.addSeparator()
        models = self.hearth.snapshot.get("models") or {}
        group = QActionGroup(sub)
        for model in models.get("models", []):
            action = QAction(model["name"], sub, checkable=True)
            action.setChecked(model["name"] == models.get("default"))
            action.triggered.connect(
                lambda _=False, name=model["name"]: self.hearth.choose_model(name)
            )
            group.addAction(action)
            sub.addAction(action)
        sub.addAction("Download a better model…", self.hearth.first_run.offer_model)
        sub.addSeparator()
        unload = sub.addAction("Unload now", self.hearth.unload_models)
        unload.setEnabled(bool(runners))

    def _privacy_section(self, menu: QMenu) -> None:
        net = self.hearth.snapshot.get("net") or {}
        offline = QAction("Offline mode", menu, checkable=True)
        offline.setChecked(net.get("mode", "offline") == "offline")
        offline.setEnabled(self.hearth.conn.state is State.CONNECTED)
        offline.triggered.connect(self.hearth.set_offline)
        menu.addAction(offline)
        sub = menu.addMenu("Privacy")
        sub.addAction("Audit log…", lambda: self.hearth.show_privacy("all"))
        sub.addAction("What left this machine…", lambda: self.hearth.show_privacy("data"))

    def _app_section(self, menu: QMenu) -> None:
        vault = self.hearth.snapshot.get("vault") or {}
        if self.hearth.conn.state is State.OFFLINE:
            menu.addAction("Start Hearth", self.hearth.conn.start_daemon)
        elif vault.get("reason") == "passphrase_locked":
            menu.addAction("Unlock history…", self.hearth.first_run.ask_unlock)
        elif vault.get("reason") == "not_initialized":
            menu.addAction("Keep history…", self.hearth.first_run.ask_history)
        menu.addAction("Settings…", self.hearth.show_settings)
        menu.addAction("Quit Hearth", self.hearth.ask_quit)

    def _activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason in (
            QSystemTrayIcon.ActivationReason.Trigger,
            QSystemTrayIcon.ActivationReason.DoubleClick,
        ):
            self.hearth.show_chat()
