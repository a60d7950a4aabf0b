"""The tray's own socket, which `hearth rewrite --selection` asks (no Qt on that side)."""

from __future__ import annotations

import json
import os
import socket
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pytestqt.qtbot import QtBot

from daemon.cli.selection import ask_tray
from gui.ipc import TrayServer


@pytest.fixture
def server(tmp_path: Path) -> Iterator[TrayServer]:
    run = Path(os.environ.get("TMPDIR", "/tmp")) / f"hk-ipc-{os.getpid()}"  # short: 108 bytes
    run.mkdir(mode=0o700, exist_ok=True)
    tray = TrayServer(run / "tray.sock")
    assert tray.listen()
    yield tray
    tray.close()
    (run / "tray.sock").unlink(missing_ok=True)
    run.rmdir()


def ask(qtbot: QtBot, path: Path, line: bytes) -> dict[str, Any]:
    """Send a raw line from a plain socket (as the CLI does) while Qt serves it."""
    answers: list[bytes] = []

    def client() -> None:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(str(path))
            sock.sendall(line)
            answers.append(sock.makefile("rb").readline())

    thread = threading.Thread(target=client)
    thread.start()
    qtbot.waitUntil(lambda: bool(answers), timeout=10_000)
    thread.join()
    answer: dict[str, Any] = json.loads(answers[0])
    return answer


def test_the_command_reaches_the_tray_and_waits_for_how_the_run_ended(
    qtbot: QtBot, server: TrayServer
) -> None:
    asked: list[tuple[Any, dict[str, Any]]] = []

    def run(preset: Any, options: dict[str, Any], reply: Callable[[str], None]) -> None:
        asked.append((preset, options))
        reply("replaced")

    server.rewrite_selection.connect(run)
    outcome: list[str | None] = []
    thread = threading.Thread(
        target=lambda: outcome.append(ask_tray(server.path, "concise", {"temperature": 0}))
    )
    thread.start()
    qtbot.waitUntil(lambda: bool(outcome), timeout=10_000)
    thread.join()
    assert outcome == ["replaced"] and asked == [("concise", {"temperature": 0})]
    assert stat.S_IMODE(server.path.stat().st_mode) & 0o077 == 0  # the user's alone


def test_bad_requests_get_an_error_and_the_tray_keeps_serving(
    qtbot: QtBot, server: TrayServer
) -> None:
    assert ask(qtbot, server.path, b"not json\n") == {"error": "not a JSON request"}
    assert "unknown command" in ask(qtbot, server.path, b'{"command": "rm -rf"}\n')["error"]
    bad = b'{"command": "rewrite_selection", "preset": 3}\n'
    assert "preset must be a string" in ask(qtbot, server.path, bad)["error"]
    server.rewrite_selection.connect(lambda p, o, reply: reply("nothing"))
    good = b'{"command": "rewrite_selection", "preset": null}\n'
    assert ask(qtbot, server.path, good) == {"result": "nothing"}


def test_no_tray_listening_means_none_and_a_second_tray_does_not_take_over(
    server: TrayServer, tmp_path: Path
) -> None:
    assert ask_tray(tmp_path / "nobody.sock", None, {}) is None
    second = TrayServer(server.path)
    assert second.other_tray() and not second.listen()
    server.close()  # gone: a stale socket file is replaced
    third = TrayServer(server.path)
    assert not third.other_tray() and third.listen()
    third.close()
