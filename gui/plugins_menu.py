"""The plugins in the tray: a Plugins ▸ menu of their commands, their notifications, and
their hotkeys bound through the tray's global hotkey service.

The daemon runs the plugins (daemon/pluginhost/); the tray only asks it: the menu and
the hotkeys come from `plugins.list`, a menu item runs `plugins.run`, a hotkey runs
`plugins.hotkey`, and one `plugins.watch` stays open so a plugin's `ctx.notify` shows
as a tray notification. Results are shown in a notification too, shortened: the tray
log records which plugin ran and how it ended, never what it said.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QMenu

from daemon.errors import HearthError
from gui.connection import DaemonConnection, Reply, State
from gui.hotkeys import HotkeyService

log = logging.getLogger("hearth.tray")

ACTION_PREFIX = "plugin:"  # hotkey actions are "plugin:ID:KEYS"
RESULT_CHARS = 300  # a notification shows this much of a result
Notify = Callable[..., None]  # Tray.notify(title, text, error=False)

_MODIFIERS = {"ctrl": "Ctrl", "control": "Ctrl", "alt": "Alt", "shift": "Shift",
              "meta": "Meta", "super": "Meta", "win": "Meta", "cmd": "Ctrl"}  # fmt: skip


def qt_keys(keys: str) -> str:
    """A plugin's "ctrl+alt+v" as Qt's portable text ("Ctrl+Alt+V"), which the hotkey
    service parses; an unknown word is passed on for it to refuse in words."""
    parts = [p.strip() for p in keys.split("+") if p.strip()]
    if not parts:
        return ""
    *mods, key = parts
    names = [_MODIFIERS.get(m.lower(), m) for m in mods]
    names.append(key.upper() if len(key) == 1 else key[:1].upper() + key[1:])
    return "+".join(names)


def shorten(result: Any) -> str:
    """A command's result as a notification can show it."""
    if result is None:
        return "Done."
    text = result if isinstance(result, str) else json.dumps(result, ensure_ascii=False)
    text = text.strip() or "Done (no output)."
    return text if len(text) <= RESULT_CHARS else text[: RESULT_CHARS - 1].rstrip() + "…"


class PluginsMenu(QObject):
    """The tray's side of the plugin host: add ``section`` to the tray's menu."""

    busy = Signal(bool)  # a command or hotkey run started (True) or ended (False)

    def __init__(
        self, connection: DaemonConnection, notify: Notify,
        hotkeys: HotkeyService | None = None, parent: QObject | None = None,
    ) -> None:  # fmt: skip
        super().__init__(parent)
        self.conn = connection
        self.notify = notify
        self.hotkeys = hotkeys
        self.plugins: list[dict[str, Any]] = []  # the last plugins.list
        self.watch: Reply | None = None
        self.running: dict[str, int] = {}  # "ID command" or "ID keys" -> runs in progress
        self.told: dict[str, str] = {}  # hotkey action -> the problem already said
        connection.connected.connect(lambda _: self.start())

    def start(self) -> None:
        """On each connection: the plugin list (menu and hotkeys) and the notifications."""
        self.refresh()
        if self.watch is None or self.watch.done:
            self.watch = self.conn.call("plugins.watch")
            self.watch.delta.connect(self._notification)
            self.watch.failed.connect(self._watch_failed)

    def refresh(self) -> None:
        if self.conn.state is State.CONNECTED:
            reply = self.conn.call("plugins.list")
            reply.finished.connect(lambda r: self.update(r.get("plugins", [])))
            reply.failed.connect(lambda e: log.warning("plugins.list failed: %s", e.kind))

    def update(self, plugins: list[dict[str, Any]]) -> None:
        self.plugins = plugins
        self._bind_hotkeys()

    def enabled(self) -> list[dict[str, Any]]:
        return [p for p in self.plugins if p.get("enabled")]

    # -- the menu ------------------------------------------------------------------------

    def section(self, menu: QMenu) -> None:
        """Plugins ▸, one submenu per enabled plugin with its commands."""
        sub = menu.addMenu("Plugins")
        sub.aboutToShow.connect(lambda: self._fill(sub))
        self._fill(sub)
        sub.setEnabled(self.conn.state is State.CONNECTED)
        self.refresh()  # for the next time it opens

    def _fill(self, sub: QMenu) -> None:
        sub.clear()
        plugins = self.enabled()
        for plugin in plugins:
            name = str(plugin.get("name") or plugin["id"])
            commands = plugin.get("commands") or []
            item = sub.addMenu(name)
            item.setToolTip(str(plugin.get("description") or ""))
            for command in commands:
                running = f"{plugin['id']} {command['name']}" in self.running
                action = item.addAction(command["name"] + (" (running…)" if running else ""))
                action.setEnabled(not running)
                action.setToolTip(str(command.get("description") or ""))
                action.setStatusTip(action.toolTip())
                action.triggered.connect(
                    lambda _=False, p=plugin, c=command["name"]: self.run(p, c)
                )
            if not commands:
                why = plugin.get("problem") or f"no commands ({plugin.get('state', 'stopped')})"
                item.addAction(str(why)).setEnabled(False)
        if not plugins:
            sub.addAction("No plugins enabled").setEnabled(False)
            sub.addAction("hearth plugins enable ID turns one on").setEnabled(False)

    # -- running -------------------------------------------------------------------------

    def run(self, plugin: dict[str, Any], command: str) -> Reply:
        """Run a plugin's command; its result (or why it failed) shows as a notification."""
        log.info("plugin command: %s %s", plugin["id"], command)
        params = {"id": plugin["id"], "command": command}
        title = f"{plugin.get('name') or plugin['id']}: {command}"
        return self._call("plugins.run", params, f"{plugin['id']} {command}", title)

    def press(self, plugin_id: str, name: str, keys: str, what: str = "") -> Reply:
        """A plugin's hotkey was pressed: the daemon runs its handler (``what`` it does,
        from its docstring, titles the notification of its result)."""
        params = {"id": plugin_id, "keys": keys}
        return self._call(
            "plugins.hotkey", params, f"{plugin_id} {keys}", f"{name}: {what or keys}"
        )

    def _call(self, method: str, params: dict[str, Any], key: str, title: str) -> Reply:
        reply = self.conn.call(method, params)
        self._started(key)
        reply.finished.connect(lambda r: self._done(key, title, r.get("result")))
        reply.failed.connect(lambda e: self._failed(key, title, e))
        return reply

    def _started(self, key: str) -> None:
        self.running[key] = self.running.get(key, 0) + 1
        self.busy.emit(True)

    def _ended(self, key: str) -> None:
        left = self.running.pop(key, 0) - 1
        if left > 0:
            self.running[key] = left
        self.busy.emit(False)

    def _done(self, key: str, title: str, result: Any) -> None:
        self._ended(key)
        log.info("plugin %s: finished", key)
        self.notify(title, shorten(result))

    def _failed(self, key: str, title: str, error: HearthError) -> None:
        self._ended(key)
        log.warning("plugin %s: %s", key, error.kind)
        self.notify(f"{title} failed", error.message, error=True)

    # -- notifications -------------------------------------------------------------------

    def _notification(self, params: dict[str, Any]) -> None:
        plugin = str(params.get("plugin", ""))
        log.info("plugin notification from %s", plugin)
        name = next((p.get("name") for p in self.plugins if p.get("id") == plugin), None)
        title = str(params.get("title") or name or plugin)
        self.notify(title, str(params.get("text", "")))

    def _watch_failed(self, error: HearthError) -> None:
        """A lost daemon fails the watch; the next connection opens a new one."""
        log.info("plugins.watch ended: %s", error.kind)

    # -- hotkeys -------------------------------------------------------------------------

    def _bind_hotkeys(self) -> None:
        """Bind each enabled plugin's hotkeys; unbind those of plugins gone or disabled.
        A combination that cannot be had is said once, like the tray's own."""
        if self.hotkeys is None:
            return
        wanted: dict[str, tuple[str, str, str, str]] = {}  # action -> (id, name, keys, what)
        for plugin in self.enabled():
            for hotkey in plugin.get("hotkeys") or []:
                keys, what = str(hotkey["keys"]), str(hotkey.get("description") or "")
                name = str(plugin.get("name") or plugin["id"])
                action = f"{ACTION_PREFIX}{plugin['id']}:{keys}"
                wanted[action] = (plugin["id"], name, keys, what)
        for action in [a for a in self.hotkeys.handlers if a.startswith(ACTION_PREFIX)]:
            if action not in wanted:
                self.hotkeys.unbind(action)
                self.told.pop(action, None)
        for action, (plugin_id, name, keys, what) in wanted.items():
            sequence = qt_keys(keys)
            same = self.hotkeys.sequences.get(action) == sequence
            if same and action not in self.hotkeys.problems:
                continue
            handler = self._handler(plugin_id, name, keys, what)
            problem = self.hotkeys.bind(action, sequence, handler)
            if problem and self.told.get(action) != problem:
                self.notify(f"{name}: {sequence} is not available", problem, error=True)
            self.told[action] = problem

    def _handler(self, plugin_id: str, name: str, keys: str, what: str) -> Callable[[], None]:
        def pressed() -> None:
            self.press(plugin_id, name, keys, what)

        return pressed
