"""`hearth tray`: the tray process. Builds everything once in main() and runs Qt's loop.

``Hearth`` is the controller the tray menu and windows talk to: it owns the connection,
the latest snapshot of the daemon's state (for the menu), the windows (created on first
use) and the icon's look.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QSocketNotifier, QTimer
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication, QMessageBox, QSystemTrayIcon

from daemon.config import Config
from daemon.errors import HearthError
from daemon.paths import Paths
from gui import icons
from gui.chat_window import ChatWindow
from gui.connection import DaemonConnection, State
from gui.first_run import FirstRun, TrayState
from gui.hotkeys import DEFAULTS, PRESET_PREFIX, HotkeyService
from gui.ipc import TrayServer, socket_path
from gui.plugins_menu import PluginsMenu
from gui.privacy import PrivacyWindow
from gui.rewriter import SelectionRewriter
from gui.selection import Keys, platform_keys
from gui.settings import SettingsWindow
from gui.tray import Tray

log = logging.getLogger("hearth.tray")
TRAY_WAIT_MS = 10_000  # at login the panel may start after us: wait before doing without


class Hearth(QObject):
    def __init__(
        self, paths: Paths, connection: DaemonConnection, hotkeys: HotkeyService | None = None,
        keys: Keys | None = None,
    ) -> None:  # fmt: skip
        """``hotkeys``: the global hotkey service (main() makes the platform's; without
        one, none is registered). ``keys``: what types the copy and paste keystrokes."""
        super().__init__()
        self.paths = paths
        self.conn = connection
        self.snapshot: dict[str, Any] = {}
        self.busy = 0  # answers and rewrites in progress
        self.error = ""  # the last error, until the next success
        self.chat: ChatWindow | None = None
        self.settings: SettingsWindow | None = None
        self.privacy: PrivacyWindow | None = None
        self.quit_box: QMessageBox | None = None
        self.exit: Callable[[int], None] = QApplication.exit  # a field: tests swap it
        self.first_run = FirstRun(connection, TrayState(paths.data / "tray.json"))
        self.first_run.vaultChanged.connect(self._vault_changed)
        self.tray = Tray(self)
        self.rewriter = SelectionRewriter(connection, keys, self.tray.notify, self)
        self.rewriter.popup_shown.connect(lambda _: self._rewriting(True))
        self.rewriter.finished.connect(lambda _: self._rewriting(False))
        self.popup_open = False
        self.hotkeys = hotkeys
        self.plugins = PluginsMenu(connection, self.tray.notify, hotkeys, self)
        self.tray.add_section(self.plugins.section)
        self.plugins.busy.connect(self._set_busy)
        self.hotkey_notices: dict[str, tuple[str, str]] = {}  # action -> (keys, problem) told
        self.keep_alive: float = Config().keep_alive
        self.conn.stateChanged.connect(lambda _: self._update_look())
        self.conn.connected.connect(self._on_connected)
        self.conn.disconnected.connect(self._on_disconnected)

    # -- state ---------------------------------------------------------------------------

    def _on_connected(self, hello: dict[str, Any]) -> None:
        self.error = ""
        self.refresh()
        self.first_run.check()
        self.conn.call("prefs.get").finished.connect(self._prefs)

    def _prefs(self, result: dict[str, Any]) -> None:
        """The hotkeys as configured now, and a warm model for the first rewrite."""
        self.keep_alive = float(result["prefs"].get("keep_alive", self.keep_alive))
        self.rewriter.set_presets(result.get("presets", []))
        self.apply_hotkeys(result["prefs"].get("hotkeys", {}))
        hotkeys = self.hotkeys
        bound = hotkeys is not None and "rewrite" in hotkeys.sequences
        if bound and self.keep_alive != 0 and hotkeys and "rewrite" not in hotkeys.problems:
            self.rewriter.warm()

    # -- hotkeys -------------------------------------------------------------------------

    def apply_hotkeys(self, configured: dict[str, str]) -> None:
        """Bind what config.toml's [hotkeys] says (the defaults where it is silent), and
        say once which combination could not be had, and why."""
        if self.hotkeys is None:
            return
        wanted = {**DEFAULTS, **configured}
        for action in list(self.hotkeys.handlers):
            if self._handler(action) is not None and not wanted.get(action, "").strip():
                self.hotkeys.unbind(action)
                self.hotkey_notices.pop(action, None)
        for action, sequence in wanted.items():
            handler = self._handler(action)
            if handler is None or not sequence.strip():
                continue
            same = self.hotkeys.sequences.get(action) == sequence
            if same and action not in self.hotkeys.problems:
                continue
            problem = self.hotkeys.bind(action, sequence, handler)
            if problem and self.hotkey_notices.get(action) != (sequence, problem):
                self.tray.notify(f"{sequence} is not available", problem, error=True)
            self.hotkey_notices[action] = (sequence, problem)

    def _handler(self, action: str) -> Callable[[], None] | None:
        """The tray's own actions; others (plugins') bind themselves."""
        if action == "rewrite":
            return lambda: self.rewriter.trigger()
        if action == "open_chat":
            return self.show_chat
        if action.startswith(PRESET_PREFIX):
            preset = action.removeprefix(PRESET_PREFIX)
            return lambda: self.rewriter.trigger(preset)
        return None

    def _rewriting(self, open_: bool) -> None:
        if open_ != self.popup_open:
            self.popup_open = open_
            self._set_busy(open_)

    def rewrite_selection(
        self, preset: str | None, options: dict[str, Any], reply: Callable[[str], None]
    ) -> None:
        """`hearth rewrite --selection`, through the tray's socket: what the hotkey does."""
        if self.rewriter.busy:
            reply("busy")
            return

        def done(how: str) -> None:
            self.rewriter.finished.disconnect(done)
            reply(how)

        self.rewriter.finished.connect(done)
        self.rewriter.trigger(preset, options)

    def _on_disconnected(self, why: str) -> None:
        if self.conn.state is State.OFFLINE:
            self.tray.notify("Hearth", why, error=True)
        self._update_look()

    def refresh(self) -> None:
        """Ask the daemon for what the menu shows (its submenus refill as they open)."""
        if self.conn.state is not State.CONNECTED:
            return
        for key, method in (("status", "status"), ("models", "models.list"),
                            ("net", "net.status"), ("vault", "vault.status")):  # fmt: skip
            self.conn.call(method).finished.connect(lambda r, k=key: self._store(k, r))
        self.conn.call("rewrite.presets").finished.connect(
            lambda r: self._store("presets", r.get("presets", []))
        )

    def _store(self, key: str, value: Any) -> None:
        self.snapshot[key] = value
        if key == "vault":
            self._update_look()

    def _vault_changed(self, status: dict[str, Any]) -> None:
        self._store("vault", status)
        if self.chat is not None:
            self.chat.reload()

    def _update_look(self) -> None:
        vault = self.snapshot.get("vault") or {}
        if self.conn.state is not State.CONNECTED:
            look, detail = icons.Look.OFFLINE, ""
        elif self.error:
            look, detail = icons.Look.ERROR, self.error
        elif self.busy:
            look, detail = icons.Look.GENERATING, ""
        elif vault.get("reason") == "passphrase_locked":
            look, detail = icons.Look.LOCKED, "unlock it from this menu"
        else:
            look, detail = icons.Look.IDLE, ""
        if look is not self.tray.look:
            log.info("tray icon: %s", look.value)
        self.tray.show_look(look, detail)

    def _set_busy(self, busy: bool) -> None:
        self.busy = max(0, self.busy + (1 if busy else -1))
        if busy:
            self.error = ""
        self._update_look()

    def _failed(self, title: str, error: HearthError) -> None:
        self.error = error.message
        self._update_look()
        self.tray.notify(title, error.message, error=True)

    # -- actions (the menu's) -----------------------------------------------------------

    def show_chat(self) -> None:
        if self.chat is None:
            self.chat = ChatWindow(self.conn)
            self.chat.generating.connect(self._set_busy)
            self.chat.answered.connect(lambda _: self.refresh())
        _raise(self.chat)
        log.info("chat window shown")

    def show_settings(self) -> None:
        if self.settings is None:
            self.settings = SettingsWindow(self.conn, self.hotkeys)
            self.settings.finished.connect(lambda _: self.refresh())
            self.settings.hotkeys_saved.connect(self.apply_hotkeys)
        else:
            self.settings.load()
        _raise(self.settings)

    def show_privacy(self, kind: str = "all") -> None:
        if self.privacy is None:
            self.privacy = PrivacyWindow(self.conn)
        else:
            self.privacy.refresh()
        self.privacy.show_kind(kind)
        _raise(self.privacy)

    def rewrite_clipboard(self, preset: str) -> None:
        clipboard = QGuiApplication.clipboard()
        text = clipboard.text()
        if not text.strip():
            self.tray.notify("Nothing to rewrite", "Copy some text first, then pick a preset.")
            return
        self._set_busy(True)
        reply = self.conn.call("rewrite", {"text": text, "preset": preset})

        def done(result: dict[str, Any]) -> None:
            self._set_busy(False)
            clipboard.setText(result["text"])
            self.tray.notify("Rewritten", f"{preset}: the new text is on your clipboard.")

        def failed(error: HearthError) -> None:
            self._set_busy(False)
            self._failed("Rewrite failed", error)

        reply.finished.connect(done)
        reply.failed.connect(failed)

    def choose_model(self, name: str) -> None:
        reply = self.conn.call("prefs.set", {"key": "default_model", "value": name})
        reply.finished.connect(lambda _: self.refresh())
        reply.failed.connect(lambda e: self._failed("Could not switch the model", e))

    def unload_models(self) -> None:
        for runner in (self.snapshot.get("status") or {}).get("runners", []):
            reply = self.conn.call("models.unload", {"model": runner["model"]})
            reply.finished.connect(lambda _: self.refresh())
            reply.failed.connect(lambda e: self._failed("Could not unload the model", e))

    def set_offline(self, offline: bool) -> None:
        mode = "offline" if offline else "allow-listed"
        reply = self.conn.call("net.set_mode", {"mode": mode})
        reply.finished.connect(lambda status: self._store("net", status))
        reply.failed.connect(lambda e: self._failed("Could not change the network mode", e))
        if not offline:
            self.tray.notify(
                "Online for allowed hosts", "Only the hosts you allowed are reachable."
            )

    def ask_quit(self) -> None:
        box = QMessageBox()
        box.setWindowIcon(icons.app_icon())
        box.setWindowTitle("Quit Hearth")
        box.setText("Quit Hearth?")
        box.setInformativeText(
            "Hearth's background service can keep running, so the command line and other "
            "apps can still use it. It uses little memory once its model is unloaded."
        )
        stop = box.addButton("Quit and stop the service", QMessageBox.ButtonRole.DestructiveRole)
        keep = box.addButton("Quit, keep it running", QMessageBox.ButtonRole.AcceptRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(keep)

        def done(_: int) -> None:
            clicked = box.clickedButton()
            if clicked is stop:
                self.quit(stop_daemon=True)
            elif clicked is keep:
                self.quit(stop_daemon=False)

        box.finished.connect(done)
        self.quit_box = box
        _raise(box)

    def quit(self, stop_daemon: bool) -> None:
        pid = (self.snapshot.get("status") or {}).get("pid")
        self.conn.close()
        if stop_daemon and isinstance(pid, int):
            try:
                os.kill(pid, signal.SIGTERM)
                log.info("asked the daemon (pid %d) to stop", pid)
            except OSError as exc:
                log.warning("could not stop the daemon: %s", exc)
        self.tray.icon.hide()
        self.exit(0)  # not quit(): that asks each window, and the chat only hides


def _raise(window: Any) -> None:
    window.show()
    window.raise_()
    window.activateWindow()


def setup_logging(paths: Paths) -> None:
    """The tray's own log: states and error kinds, never what the user wrote."""
    paths.ensure()
    handler = logging.FileHandler(paths.logs / "tray.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)


def _window_without_tray(app: QApplication, hearth: Hearth) -> None:
    """No tray on this desktop (yet): the chat window is the app, and closing it quits."""
    if QSystemTrayIcon.isSystemTrayAvailable():
        return
    log.warning("no system tray here: opening the chat window instead")
    app.setQuitOnLastWindowClosed(True)
    hearth.show_chat()
    assert hearth.chat is not None
    hearth.chat.hide_on_close = False


def _quit_on_signals(app: QApplication) -> tuple[socket.socket, socket.socket, QSocketNotifier]:
    """Ctrl+C and SIGTERM quit cleanly. Python runs signal handlers only when it gets
    control, so the signal's wake-up byte is made an event Qt's loop waits on: no
    polling timer, no wake-ups while idle."""
    reader, writer = socket.socketpair()
    reader.setblocking(False)
    writer.setblocking(False)
    signal.set_wakeup_fd(writer.fileno())
    notifier = QSocketNotifier(reader.fileno(), QSocketNotifier.Type.Read, app)
    notifier.activated.connect(lambda *_: reader.recv(64))
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: app.exit(0))
    return reader, writer, notifier  # the caller keeps them alive (and the fds open)


def main(
    argv: list[str] | None = None, autostart: bool = True, window_without_tray: bool = True
) -> int:
    paths = Paths.from_env()
    setup_logging(paths)
    app = QApplication(argv if argv is not None else sys.argv[:1])
    app.setApplicationName("Hearth")
    app.setApplicationDisplayName("Hearth")
    app.setDesktopFileName("hearth")
    app.setQuitOnLastWindowClosed(False)
    app.setWindowIcon(icons.app_icon())
    server = TrayServer(socket_path(paths.run))
    if server.other_tray():  # one tray holds the hotkeys; a second would find them taken
        log.info("another tray is running: leaving it be")
        print("Hearth is already running in the tray.", file=sys.stderr)
        return 0
    connection = DaemonConnection(paths, autostart=autostart)
    hotkeys = HotkeyService()
    hearth = Hearth(paths, connection, hotkeys, platform_keys())
    try:  # the hotkeys work before the daemon answers (pressing one starts it)
        hearth.apply_hotkeys(Config.load(paths.config_file).hotkeys)
    except ValueError:
        hearth.apply_hotkeys({})
    server.rewrite_selection.connect(hearth.rewrite_selection)
    server.listen()
    hearth.tray.icon.show()  # shows up by itself if a tray appears later (a panel starting)
    log.info("tray icon shown (pid %d)", os.getpid())
    if window_without_tray:
        QTimer.singleShot(0 if QSystemTrayIcon.isSystemTrayAvailable() else TRAY_WAIT_MS,
                          lambda: _window_without_tray(app, hearth))  # fmt: skip
    wake = _quit_on_signals(app)  # noqa: F841 (kept alive while the loop runs)
    connection.open()
    code = app.exec()
    log.info("quitting (status %d)", code)
    server.close()
    hotkeys.close()
    connection.close()
    return int(code)
