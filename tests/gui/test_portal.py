"""The Wayland hotkey backend (the desktop portal's GlobalShortcuts) over a real, private
D-Bus session bus. No desktop here offers the portal, so a stand-in service plays the
desktop's part (a fake for the logic around it: our D-Bus calls, the Request/Response
dance, the Activated signal reaching Qt's thread, a refusal reported)."""

from __future__ import annotations

import queue
import shutil
import subprocess
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from jeepney import DBusAddress, HeaderFields, MessageType, new_method_return, new_signal
from jeepney.bus_messages import message_bus
from jeepney.io.blocking import open_dbus_connection
from pytestqt.qtbot import QtBot

from gui.hotkeys import HotkeyService
from gui.portal import BUS_NAME, INTERFACE, PATH, REQUEST, PortalBackend, portal_problem


@pytest.fixture
def bus(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A D-Bus session bus of this test's own."""
    if shutil.which("dbus-run-session") is None:
        pytest.fail("dbus-run-session is missing: run `bash tests/system-deps.sh` first")
    session = subprocess.Popen(
        ["dbus-run-session", "--", "sh", "-c", 'echo "$DBUS_SESSION_BUS_ADDRESS"; exec cat'],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert session.stdout is not None and session.stdin is not None
    address = session.stdout.readline().strip()
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", address)
    yield address
    session.stdin.close()
    session.wait(10)


class FakeDesktop:
    """Answers CreateSession and BindShortcuts as a desktop would, and presses keys."""

    def __init__(self, refuse: bool = False) -> None:
        self.refuse = refuse
        self.bound: list[tuple[str, dict[str, Any]]] = []
        self.session = "/org/freedesktop/portal/desktop/session/1_1/hearth"
        self.commands: queue.Queue[str | None] = queue.Queue()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        assert self.ready.wait(10)

    def press(self, shortcut: str) -> None:
        self.commands.put(shortcut)

    def stop(self) -> None:
        self.commands.put(None)
        self.thread.join(10)

    def _serve(self) -> None:
        with open_dbus_connection(bus="SESSION") as conn:
            conn.send_and_get_reply(message_bus.RequestName(BUS_NAME))
            self.ready.set()
            while True:
                try:
                    command = self.commands.get_nowait()
                except queue.Empty:
                    try:
                        message = conn.receive(timeout=0.1)
                    except TimeoutError:
                        continue
                    if message.header.message_type is MessageType.method_call:
                        self._answer(conn, message)
                    continue
                if command is None:
                    return
                portal = DBusAddress(PATH, interface=INTERFACE)
                conn.send(new_signal(portal, "Activated", "osta{sv}",
                                     (self.session, command, 1, {})))  # fmt: skip

    def _answer(self, conn: Any, message: Any) -> None:
        fields = message.header.fields
        member = fields[HeaderFields.member]
        if member == "Get":  # Properties.Get(interface, "version")
            conn.send(new_method_return(message, "v", (("u", 1),)))
            return
        if member == "CreateSession":
            options, results = message.body[0], {"session_handle": ("o", self.session)}
        elif member == "BindShortcuts":
            _, shortcuts, _, options = message.body
            self.bound = list(shortcuts)
            results = {"shortcuts": ("a(sa{sv})", [
                (sid, {"trigger_description": ("s", d["preferred_trigger"][1])})
                for sid, d in shortcuts
            ])}  # fmt: skip
        else:
            return
        sender = fields[HeaderFields.sender].lstrip(":").replace(".", "_")
        request = f"{PATH}/request/{sender}/{options['handle_token'][1]}"
        conn.send(new_method_return(message, "o", (request,)))
        code = 1 if self.refuse and member == "BindShortcuts" else 0
        conn.send(new_signal(DBusAddress(request, interface=REQUEST), "Response", "ua{sv}",
                             (code, {} if code else results)))  # fmt: skip


def portal_service() -> HotkeyService:
    service: HotkeyService = HotkeyService(
        PortalBackend(lambda a: service._fire(a), lambda a, p: service._report(a, p))
    )
    return service


def test_without_the_portal_on_the_bus_we_say_so(bus: str) -> None:
    assert "no global shortcuts" in portal_problem()


def test_shortcuts_are_bound_through_the_portal_and_its_activations_run_in_qt(
    qtbot: QtBot, bus: str
) -> None:
    desktop = FakeDesktop()
    try:
        assert portal_problem() == ""
        service = portal_service()
        pressed: list[str] = []
        assert service.bind("rewrite", "Ctrl+Alt+R", lambda: pressed.append("rewrite")) == ""
        service.bind("rewrite:concise", "Meta+Shift+C", lambda: pressed.append("concise"))
        qtbot.waitUntil(lambda: len(desktop.bound) == 2, timeout=10_000)
        wanted = {sid: d["preferred_trigger"][1] for sid, d in desktop.bound}
        assert wanted == {"rewrite": "CTRL+ALT+r", "rewrite:concise": "SHIFT+LOGO+c"}
        assert dict(desktop.bound)["rewrite"]["description"][1] == "Rewrite the selected text"
        desktop.press("rewrite:concise")
        desktop.press("rewrite")
        desktop.press("somebody-else")  # not ours: ignored
        qtbot.waitUntil(lambda: pressed == ["concise", "rewrite"], timeout=10_000)
        assert service.problems == {}
        service.close()
    finally:
        desktop.stop()


def test_a_desktop_that_refuses_the_shortcuts_is_reported(qtbot: QtBot, bus: str) -> None:
    desktop = FakeDesktop(refuse=True)
    try:
        service = portal_service()
        assert service.bind("rewrite", "Ctrl+Alt+R", lambda: None) == ""  # asked; pending
        qtbot.waitUntil(lambda: "rewrite" in service.problems, timeout=10_000)
        assert "refused" in service.problems["rewrite"]
        service.close()
    finally:
        desktop.stop()
