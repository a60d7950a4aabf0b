"""Global hotkeys on Wayland: the XDG desktop portal's GlobalShortcuts interface (D-Bus).

Wayland gives no client the keyboard of another, so only the desktop can bind a global
shortcut. Where it offers the portal (KDE Plasma 5.27+, GNOME 48+, Hyprland…), we ask it
to bind ours: it may show the user a dialog to confirm or change the keys, and it sends
``Activated`` when one is pressed. Elsewhere, `hearth rewrite --selection` bound in the
desktop's keyboard settings does the same job (README).

D-Bus through jeepney (already there for keyring on Linux; Qt's D-Bus module is not in
PySide6-Essentials), on a blocking connection in a thread of its own. The thread only
calls ``fire`` and ``report``, which gui/hotkeys.py hands to Qt's thread.
"""

from __future__ import annotations

import logging
import os
import queue
import secrets
import threading
from collections.abc import Callable
from typing import Any

from gui.hotkeys import Combo

log = logging.getLogger("hearth.tray")

BUS_NAME = "org.freedesktop.portal.Desktop"
PATH = "/org/freedesktop/portal/desktop"
INTERFACE = "org.freedesktop.portal.GlobalShortcuts"
REQUEST = "org.freedesktop.portal.Request"
TIMEOUT_S = 5.0
_PORTAL_MODIFIERS = {"ctrl": "CTRL", "alt": "ALT", "shift": "SHIFT", "meta": "LOGO"}
LABELS = {"rewrite": "Rewrite the selected text", "open_chat": "Open Hearth's chat window"}


def trigger(combo: Combo) -> str:
    """The shortcut spec's form: "CTRL+ALT+r" (modifiers, then an XKB keysym name)."""
    mods = [_PORTAL_MODIFIERS[m] for m in ("ctrl", "alt", "shift", "meta") if m in combo.modifiers]
    return "+".join([*mods, combo.key])


def portal_problem() -> str:
    """ "" when the desktop offers GlobalShortcuts, else why not (in words)."""
    if not os.environ.get("DBUS_SESSION_BUS_ADDRESS"):
        return "no D-Bus session bus here, so no desktop portal"
    try:
        from jeepney import DBusAddress, Properties
        from jeepney.io.blocking import open_dbus_connection
    except ImportError:
        return "jeepney (for the desktop portal) is not installed"
    try:
        with open_dbus_connection(bus="SESSION") as conn:
            address = DBusAddress(PATH, bus_name=BUS_NAME, interface=INTERFACE)
            reply = conn.send_and_get_reply(Properties(address).get("version"), timeout=2)
    except Exception as exc:  # no portal service, timeout, refused
        log.info("no GlobalShortcuts portal: %s", exc)
        return "this desktop's portal offers no global shortcuts"
    if reply.header.message_type.name == "error":
        return "this desktop's portal offers no global shortcuts"
    return ""


class PortalBackend:
    """A GlobalShortcuts session; every change re-binds the whole set (the portal's
    BindShortcuts takes the list at once)."""

    name = "portal"

    def __init__(self, fire: Callable[[str], None], report: Callable[[str, str], None]) -> None:
        self.fire = fire
        self.report = report
        self.shortcuts: dict[str, str] = {}  # action -> trigger
        self.changes: queue.Queue[dict[str, str] | None] = queue.Queue()
        self.thread = threading.Thread(target=self._run, name="hearth-portal", daemon=True)
        self.thread.start()

    def add(self, action: str, combo: Combo) -> str:
        self.shortcuts[action] = trigger(combo)
        self.changes.put(dict(self.shortcuts))
        return ""  # the desktop may still ask the user; a refusal is reported later

    def remove(self, action: str) -> None:
        if self.shortcuts.pop(action, None) is not None:
            self.changes.put(dict(self.shortcuts))

    def close(self) -> None:
        self.changes.put(None)

    # -- the portal's thread -------------------------------------------------------------

    def _run(self) -> None:
        from jeepney.io.blocking import open_dbus_connection

        try:
            with open_dbus_connection(bus="SESSION") as conn:
                session = self._session(conn)
                bound: dict[str, str] = {}
                while True:
                    try:
                        wanted = self.changes.get_nowait()
                    except queue.Empty:
                        try:
                            message = conn.receive(timeout=0.25)
                        except TimeoutError:
                            continue  # idle: look for changes again
                        self._dispatch(session, message)
                        continue
                    if wanted is None:
                        return
                    if wanted != bound:
                        self._bind(conn, session, wanted)
                        bound = wanted
        except Exception as exc:  # no portal after all, a refusal, a timeout
            log.warning("desktop portal: %s", exc)
            for action in self.shortcuts:
                self.report(action, f"the desktop portal failed ({exc})")

    def _dispatch(self, session: str, message: Any) -> None:
        header = message.header
        fields = {k.name: v for k, v in header.fields.items()}
        if fields.get("member") == "Activated" and fields.get("interface") == INTERFACE:
            handle, shortcut = message.body[0], message.body[1]
            if handle == session and shortcut in self.shortcuts:
                self.fire(shortcut)

    def _request(self, conn: Any, call: Any, token: str) -> dict[str, Any]:
        """Call a portal method and wait for its Request's Response signal."""
        from jeepney import MatchRule, message_bus

        sender = conn.unique_name.lstrip(":").replace(".", "_")
        path = f"{PATH}/request/{sender}/{token}"
        rule = MatchRule(type="signal", interface=REQUEST, member="Response", path=path)
        conn.send_and_get_reply(message_bus.AddMatch(rule), timeout=TIMEOUT_S)
        with conn.filter(rule) as responses:
            reply = conn.send_and_get_reply(call, timeout=TIMEOUT_S)
            if reply.header.message_type.name == "error":
                raise RuntimeError(f"{reply.body[0] if reply.body else 'refused'}")
            response = conn.recv_until_filtered(responses, timeout=120)  # the user may be asked
        code, results = response.body
        if code != 0:
            raise PermissionError("the desktop refused the shortcuts" if code == 1 else
                                  "the desktop could not bind the shortcuts")  # fmt: skip
        return {k: v[1] for k, v in results.items()}

    def _session(self, conn: Any) -> str:
        from jeepney import DBusAddress, MatchRule, message_bus, new_method_call

        activated = MatchRule(type="signal", interface=INTERFACE, member="Activated", path=PATH)
        conn.send_and_get_reply(message_bus.AddMatch(activated), timeout=TIMEOUT_S)
        address = DBusAddress(PATH, bus_name=BUS_NAME, interface=INTERFACE)
        token = f"hearth{secrets.token_hex(4)}"
        options = {"handle_token": ("s", token), "session_handle_token": ("s", f"{token}s")}
        call = new_method_call(address, "CreateSession", "a{sv}", (options,))
        results = self._request(conn, call, token)
        session = str(results["session_handle"])
        log.info("desktop portal: global shortcuts session open")
        return session

    def _bind(self, conn: Any, session: str, wanted: dict[str, str]) -> None:
        from jeepney import DBusAddress, new_method_call

        address = DBusAddress(PATH, bus_name=BUS_NAME, interface=INTERFACE)
        token = f"hearth{secrets.token_hex(4)}"
        shortcuts = [
            (a, {"description": ("s", LABELS.get(a, a)), "preferred_trigger": ("s", keys)})
            for a, keys in wanted.items()
        ]
        call = new_method_call(
            address, "BindShortcuts", "oa(sa{sv})sa{sv}",
            (session, shortcuts, "", {"handle_token": ("s", token)}),
        )  # fmt: skip
        try:
            results = self._request(conn, call, token)
        except PermissionError as exc:
            for action in wanted:
                self.report(action, str(exc))
            return
        bound = {sid for sid, _ in results.get("shortcuts", [])}
        for action in wanted:
            if action not in bound:
                self.report(action, "the desktop did not bind it (see its shortcut settings)")
        log.info("desktop portal: %d shortcut(s) bound", len(bound))
