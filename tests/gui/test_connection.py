"""DaemonConnection against the real daemon: start, stream, cancel, restart."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from daemon.client import Client
from daemon.errors import DaemonUnavailable
from daemon.paths import Paths
from gui.connection import DaemonConnection, State
from tests.conftest import Daemon, make_home, start_daemon
from tests.gui.conftest import FAST, SLOW, WAIT_MS, wait

pytestmark = pytest.mark.timeout(SLOW)  # they wait for the model
Connect = Callable[..., DaemonConnection]


def home_env(home: Path) -> dict[str, str]:
    return {**os.environ, "HEARTH_HOME": str(home)}


def daemon_pid(paths: Paths) -> int:
    with Client.connect(paths.socket) as c:
        return int(c.call("status")["pid"])


def stop_pid(pid: int) -> None:
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)


def test_it_starts_the_daemon_when_none_answers(qtbot: QtBot) -> None:
    home = make_home("keep_alive = 0\n")
    paths = Paths.from_env({"HEARTH_HOME": str(home)})
    conn = DaemonConnection(paths, autostart=True, environ=home_env(home))
    try:
        with qtbot.waitSignal(conn.connected, timeout=60_000) as hello:
            conn.open()
        assert hello.args[0]["server"] == "hearth"
        assert conn.state is State.CONNECTED
        pid = daemon_pid(paths)
        assert conn._daemon is not None and conn._daemon.pid == pid  # ours, not another's
    finally:
        conn.close()
        stop_pid(daemon_pid(paths))
        shutil.rmtree(home, ignore_errors=True)


def test_a_chat_streams_deltas_that_add_up_to_the_answer(
    qtbot: QtBot, daemon: Daemon, connect: Connect
) -> None:
    conn = connect(daemon)
    deltas: list[str] = []
    reply = conn.call(
        "chat",
        {"messages": [{"role": "user", "content": "Say hello."}], "options": FAST, "store": False},
    )
    reply.delta.connect(lambda p: deltas.append(p["text"]))
    result = wait(qtbot, reply)
    assert deltas and "".join(deltas) == result["text"]
    assert result["finish_reason"] in ("stop", "length")


def test_cancel_stops_the_answer_after_its_first_words(
    qtbot: QtBot, daemon: Daemon, connect: Connect
) -> None:
    conn = connect(daemon)
    params = {
        "messages": [{"role": "user", "content": "Write a very long story about a lighthouse."}],
        "options": {"max_tokens": 1500, "temperature": 0},
        "store": False,
    }
    reply = conn.call("chat", params)
    reply.delta.connect(lambda _: reply.cancel())
    result = wait(qtbot, reply)
    assert result["finish_reason"] == "cancelled"
    assert result["tokens"]["completion"] < 1500


def test_losing_the_daemon_fails_what_was_pending_and_reconnects_to_the_next(
    qtbot: QtBot, fresh_daemon: Daemon, connect: Connect
) -> None:
    conn = connect(fresh_daemon)  # autostart off: the test restarts the daemon itself
    first = conn.server
    params = {
        "messages": [{"role": "user", "content": "Write a long story."}],
        "options": {"max_tokens": 1500},
        "store": False,
    }
    pending = conn.call("chat", params)
    qtbot.waitUntil(lambda: bool(conn._pending), timeout=10_000)
    with qtbot.waitSignal(conn.disconnected, timeout=30_000) as lost:
        fresh_daemon.proc.kill()
    assert "Lost contact" in lost.args[0]
    qtbot.waitUntil(lambda: pending.done, timeout=10_000)
    assert isinstance(pending.error, DaemonUnavailable)
    assert conn.state is State.CONNECTING
    fresh_daemon.proc.wait()
    with qtbot.waitSignal(conn.connected, timeout=60_000):
        restarted = start_daemon(fresh_daemon.home)
    try:
        assert conn.server == first
        assert wait(qtbot, conn.call("status"))["pid"] == restarted.proc.pid
    finally:
        restarted.stop()


def test_a_daemon_that_died_is_started_again_one_stopped_on_purpose_is_not(
    qtbot: QtBot,
) -> None:
    home = make_home("keep_alive = 0\n")
    paths = Paths.from_env({"HEARTH_HOME": str(home)})
    conn = DaemonConnection(paths, autostart=True, environ=home_env(home))
    try:
        with qtbot.waitSignal(conn.connected, timeout=60_000):
            conn.open()
        first = daemon_pid(paths)
        conn._started_at = None  # as if it had been up for a while
        with qtbot.waitSignal(conn.connected, timeout=WAIT_MS):
            os.kill(first, signal.SIGKILL)  # a crash leaves its socket file behind
        second = daemon_pid(paths)
        assert second != first
        conn._started_at = None
        with qtbot.waitSignal(conn.stateChanged, timeout=60_000, check_params_cb=_offline):
            stop_pid(second)  # `hearth down`: the socket is removed, the lock released
        assert not paths.socket.exists()
        started = conn._daemon
        qtbot.wait(3000)  # several reconnection attempts
        assert conn._daemon is started and conn.state is State.OFFLINE
        failed = conn.call("status")
        qtbot.waitUntil(lambda: failed.done, timeout=5000)
        assert isinstance(failed.error, DaemonUnavailable)
        with qtbot.waitSignal(conn.connected, timeout=60_000):
            conn.start_daemon()  # the tray's "Start Hearth"
    finally:
        conn.close()
        with contextlib.suppress(DaemonUnavailable):
            stop_pid(daemon_pid(paths))
        shutil.rmtree(home, ignore_errors=True)


def _offline(state: str) -> bool:
    return state == State.OFFLINE.value
