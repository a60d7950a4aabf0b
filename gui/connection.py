"""DaemonConnection: the tray's one link to the daemon, reporting through signals.

JSON-RPC lines over a QLocalSocket (a Unix socket; a named pipe on Windows), read and
written by Qt's event loop: nothing here blocks and there is no thread. A request
returns a ``Reply`` at once; its ``delta``, ``finished`` and ``failed`` signals say the
rest, like QNetworkReply.

It starts the daemon when none answers at first. After losing a daemon it reconnects
with backoff; it starts a new one only when the old one died (its socket file is left
behind), so a daemon stopped on purpose (`hearth down`, which removes the socket) stays
stopped until the user asks for it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import time
from enum import StrEnum
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtNetwork import QLocalSocket

from daemon import PROTOCOL_VERSION
from daemon.client import EXIT_ALREADY_RUNNING
from daemon.errors import Cancelled, DaemonUnavailable, HearthError, from_rpc
from daemon.paths import Paths

log = logging.getLogger("hearth.tray")

BACKOFF_S = (0.2, 0.5, 1.0, 2.0, 3.0, 5.0)  # between reconnection attempts, then 5 s
START_GRACE_S = 30.0  # a daemon we started gets this long before we start another


class State(StrEnum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    OFFLINE = "offline"


class Reply(QObject):
    """One request in flight. Exactly one of ``finished`` or ``failed`` is emitted."""

    delta = Signal(dict)  # a streaming notification's params (chat.delta, …)
    finished = Signal(object)  # the result
    failed = Signal(object)  # a HearthError

    def __init__(self, connection: DaemonConnection, rid: int, method: str) -> None:
        super().__init__()
        self.connection = connection
        self.id = rid
        self.method = method
        self.done = False
        self.result: Any = None
        self.error: HearthError | None = None

    def cancel(self) -> None:
        """Ask the daemon to stop it; it then ends normally (finish_reason "cancelled")."""
        self.connection.cancel(self)

    def _finish(self, result: Any) -> None:
        if not self.done:
            self.done, self.result = True, result
            self.finished.emit(result)

    def _fail(self, error: HearthError) -> None:
        if not self.done:
            self.done, self.error = True, error
            self.failed.emit(error)


class DaemonConnection(QObject):
    stateChanged = Signal(str)  # a State value
    connected = Signal(dict)  # hello's result, each time a daemon answers
    disconnected = Signal(str)  # why, in words for people
    notified = Signal(str, dict)  # a notification that belongs to no request

    def __init__(
        self, paths: Paths, name: str = "hearth-tray", autostart: bool = True,
        environ: dict[str, str] | None = None, parent: QObject | None = None,
    ) -> None:  # fmt: skip
        """``environ``: the environment a daemon we start gets (its HEARTH_HOME must
        give the same ``paths``); ours by default."""
        super().__init__(parent)
        self.paths = paths
        self.environ = environ
        self.name = name
        self.autostart = autostart
        self.state = State.OFFLINE
        self.server: dict[str, Any] = {}
        self._daemon: subprocess.Popen[bytes] | None = None  # the one we started last
        self._socket = QLocalSocket(self)
        self._socket.connected.connect(self._on_socket_connected)
        self._socket.disconnected.connect(self._on_socket_lost)
        self._socket.errorOccurred.connect(self._on_socket_error)
        self._socket.readyRead.connect(self._on_ready_read)
        self._buffer = bytearray()
        self._next_id = 1
        self._pending: dict[int, Reply] = {}
        self._queued: list[tuple[Reply, dict[str, Any]]] = []  # sent once connected
        self._attempt = 0
        self._started_at: float | None = None
        self._retry = QTimer(self, singleShot=True)
        self._retry.timeout.connect(self._connect)
        self._closing = False
        self._gave_up = False  # a daemon we started died: wait for the user to ask again

    # -- public --------------------------------------------------------------------------

    def open(self) -> None:
        """Start connecting (and reconnecting, until close())."""
        self._closing = False
        self._attempt = 0
        self._set_state(State.CONNECTING)
        self._connect()

    def close(self) -> None:
        self._closing = True
        self._retry.stop()
        self._socket.abort()
        self._fail_all("the tray app is closing")
        self._set_state(State.OFFLINE)

    def start_daemon(self) -> None:
        """Start `hearth daemon` in the background, in its own session (it outlives us).

        Popen returns once the child is forked; poll() later reaps it if it exits (a
        daemon that lost the start race to another exits EXIT_ALREADY_RUNNING)."""
        self.paths.ensure()
        with open(self.paths.logs / "daemon.out", "ab") as out:
            self._daemon = subprocess.Popen(
                [sys.executable, "-m", "daemon", "daemon"],
                stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
                env=self.environ,
            )  # fmt: skip
        self._started_at = time.monotonic()
        self._gave_up = False
        log.info("started the daemon (pid %d)", self._daemon.pid)
        if self.state is not State.CONNECTED:
            self._set_state(State.CONNECTING)
            self._attempt = 0
            self._retry.start(100)

    def call(self, method: str, params: dict[str, Any] | None = None) -> Reply:
        """Send a request; the Reply's signals report. Never blocks.

        While connecting, requests wait and go out once the daemon answers; while
        offline, they fail at once (asynchronously, so callers can connect first)."""
        reply = Reply(self, self._next_id, method)
        self._next_id += 1
        params = params or {}
        if self.state is State.CONNECTED:
            self._send(reply, params)
        elif self.state is State.CONNECTING:
            self._queued.append((reply, params))
        else:
            error = DaemonUnavailable(
                "Hearth's background service is not running. It is being restarted; "
                "try again in a moment."
            )
            QTimer.singleShot(0, lambda: reply._fail(error))
        return reply

    def cancel(self, reply: Reply) -> None:
        if reply.done:
            return
        if reply in (r for r, _ in self._queued):
            self._queued = [(r, p) for r, p in self._queued if r is not reply]
            reply._fail(Cancelled("cancelled before it was sent"))
            return
        self._write({"jsonrpc": "2.0", "method": "cancel", "params": {"id": reply.id}})

    # -- socket --------------------------------------------------------------------------

    def _connect(self) -> None:
        if self._closing or self._socket.state() != QLocalSocket.LocalSocketState.UnconnectedState:
            return
        self._socket.connectToServer(str(self.paths.socket))

    def _on_socket_connected(self) -> None:
        self._buffer.clear()
        hello = Reply(self, 0, "hello")
        hello.finished.connect(self._on_hello)
        hello.failed.connect(self._on_hello_failed)
        self._pending[0] = hello
        self._write(
            {
                "jsonrpc": "2.0",
                "id": 0,
                "method": "hello",
                "params": {"client": self.name, "protocol": PROTOCOL_VERSION},
            }
        )

    def _on_hello(self, result: dict[str, Any]) -> None:
        self.server = result
        self._attempt = 0
        self._set_state(State.CONNECTED)
        log.info("connected to the daemon %s", result.get("version"))
        queued, self._queued = self._queued, []
        for reply, params in queued:
            self._send(reply, params)
        self.connected.emit(result)

    def _on_hello_failed(self, error: HearthError) -> None:
        log.warning("the daemon refused hello: %s", error.kind)
        self._fail_all(error.message)
        self._socket.abort()
        self._set_state(State.OFFLINE)
        self.disconnected.emit(error.message)

    def _on_socket_error(self, error: QLocalSocket.LocalSocketError) -> None:
        if self._socket.state() == QLocalSocket.LocalSocketState.ConnectedState:
            return  # a connected socket's errors end in disconnected()
        if self.state is State.CONNECTED:
            return
        self._schedule_retry()

    def _on_socket_lost(self) -> None:
        if self.state is not State.CONNECTED or self._closing:
            return
        log.warning("lost the daemon")
        self._fail_all("Hearth's background service stopped before answering.")
        self._set_state(State.CONNECTING)
        self.disconnected.emit("Lost contact with Hearth's background service.")
        self._attempt = 0
        self._schedule_retry()

    def _schedule_retry(self) -> None:
        if self._closing:
            return
        if self.autostart and self._should_start():
            self.start_daemon()
            return
        if self._started_died():
            self._give_up(
                "Hearth's background service could not start. What went wrong is in "
                f"{self.paths.logs / 'daemon.out'}."
            )
        elif self._stopped_on_purpose():
            self._give_up("Hearth's background service was stopped.")
        delay = BACKOFF_S[min(self._attempt, len(BACKOFF_S) - 1)]
        self._attempt += 1
        self._retry.start(int(delay * 1000))

    def _give_up(self, why: str) -> None:
        """Nobody is coming for now: fail what waits and say so (polling goes on)."""
        self._gave_up = True
        self._fail_queued(why)
        if self.state is not State.OFFLINE:
            self._set_state(State.OFFLINE)
            self.disconnected.emit(why)

    def _in_grace(self) -> bool:
        return self._started_at is not None and time.monotonic() - self._started_at < START_GRACE_S

    def _should_start(self) -> bool:
        """At first: whenever none answers. Later: only when the last one died."""
        if self._gave_up or self._in_grace():
            return False
        if not self.server:
            return True
        return self.paths.socket.exists() and not _lock_held(self.paths.socket)

    def _started_died(self) -> bool:
        """The daemon we started exited, and no other one is on its way."""
        if self._daemon is None or self._daemon.poll() is None:
            return False
        lost_race = self._daemon.returncode == EXIT_ALREADY_RUNNING
        return not lost_race and not _lock_held(self.paths.socket)

    def _stopped_on_purpose(self) -> bool:
        """A daemon that shut down cleanly removed its socket and released its lock."""
        if not self.server or self._in_grace() or self.paths.socket.exists():
            return False
        return not _lock_held(self.paths.socket)

    def _on_ready_read(self) -> None:
        self._buffer += bytes(self._socket.readAll().data())
        while (end := self._buffer.find(b"\n")) >= 0:
            line = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            try:
                message = json.loads(line)
            except ValueError:
                log.warning("ignored a line that is not JSON (%d bytes)", len(line))
                continue
            if isinstance(message, dict):
                self._dispatch(message)

    def _dispatch(self, message: dict[str, Any]) -> None:
        if "method" in message:
            params = message.get("params")
            params = params if isinstance(params, dict) else {}
            reply = self._pending.get(params.get("id", -1))
            if reply is not None:
                reply.delta.emit(params)
            else:
                self.notified.emit(str(message["method"]), params)
            return
        reply = self._pending.pop(message.get("id", -1), None)
        if reply is None:
            return
        if "error" in message:
            reply._fail(from_rpc(message["error"]))
        else:
            reply._finish(message.get("result"))

    # -- helpers -------------------------------------------------------------------------

    def _send(self, reply: Reply, params: dict[str, Any]) -> None:
        self._pending[reply.id] = reply
        self._write({"jsonrpc": "2.0", "id": reply.id, "method": reply.method, "params": params})

    def _write(self, message: dict[str, Any]) -> None:
        self._socket.write(json.dumps(message).encode() + b"\n")
        self._socket.flush()

    def _fail_all(self, why: str) -> None:
        pending, self._pending = self._pending, {}
        for reply in pending.values():
            reply._fail(DaemonUnavailable(why))

    def _fail_queued(self, why: str) -> None:
        queued, self._queued = self._queued, []
        for reply, _ in queued:
            reply._fail(DaemonUnavailable(why))

    def _set_state(self, state: State) -> None:
        if state is not self.state:
            self.state = state
            log.info("connection: %s", state.value)
            self.stateChanged.emit(state.value)


def _lock_held(socket_path: os.PathLike[str]) -> bool:
    """Whether a daemon holds its lock (alive: serving, starting or shutting down).

    The test takes the flock for an instant; a daemon starting in that instant exits
    as "already running" and its client waits for the daemon that answers next."""
    try:
        import fcntl
    except ImportError:  # Windows: no flock; the named pipe tells liveness instead
        return False
    path = Path(socket_path).with_suffix(".lock")
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)
