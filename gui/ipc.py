"""The tray's own socket, for `hearth rewrite --selection` run from a desktop shortcut.

The command asks the running tray to do what its hotkey does, so the popup opens at
once (Qt and the connection are already up, the model warm). One JSON line each way:

    → {"command": "rewrite_selection", "preset": "concise", "options": {}}
    ← {"result": "replaced"}        (or cancelled, copied, nothing, failed, busy)

The socket is `tray.sock` in the daemon's private run directory (0700), made 0600: only
the user's own processes reach it, as with the daemon's. It emits a signal and knows
nothing of windows (qutebrowser's misc/ipc.py does the same).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtNetwork import QLocalServer, QLocalSocket

log = logging.getLogger("hearth.tray")
MAX_LINE = 64 * 1024


def socket_path(run_dir: Path) -> Path:
    return run_dir / "tray.sock"


class TrayServer(QObject):
    """``rewrite_selection(preset, options, reply)``: call ``reply(result)`` when done."""

    rewrite_selection = Signal(object, dict, object)

    def __init__(self, path: Path, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.path = path
        self.server = QLocalServer(self)
        self.server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        self.server.newConnection.connect(self._accept)
        self.buffers: dict[QLocalSocket, bytearray] = {}

    def other_tray(self) -> bool:
        """Whether another tray answers on our socket."""
        probe = QLocalSocket()
        probe.connectToServer(str(self.path))
        if probe.waitForConnected(300):
            probe.abort()
            return True
        return False

    def listen(self) -> bool:
        """Listen unless another tray does (then it gets the commands); a socket file
        that nobody answers on is left over from a crash and replaced."""
        if self.other_tray():
            log.warning("another tray answers on %s: it gets the commands", self.path)
            return False
        QLocalServer.removeServer(str(self.path))
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not self.server.listen(str(self.path)):
            log.warning("cannot listen on %s: %s", self.path, self.server.errorString())
            return False
        return True

    def close(self) -> None:
        self.server.close()

    def _accept(self) -> None:
        while (sock := self.server.nextPendingConnection()) is not None:
            self.buffers[sock] = bytearray()
            sock.readyRead.connect(lambda s=sock: self._read(s))
            sock.disconnected.connect(lambda s=sock: self._drop(s))

    def _drop(self, sock: QLocalSocket) -> None:
        self.buffers.pop(sock, None)
        sock.deleteLater()

    def _read(self, sock: QLocalSocket) -> None:
        buffer = self.buffers.get(sock)
        if buffer is None:
            return
        buffer += bytes(sock.readAll().data())
        if b"\n" not in buffer:
            if len(buffer) > MAX_LINE:
                self._answer(sock, {"error": "request too long"})
            return
        line = bytes(buffer[: buffer.index(b"\n")])
        self.buffers[sock] = bytearray()  # one request per connection
        try:
            request = json.loads(line)
            if not isinstance(request, dict):
                raise ValueError("not an object")
        except ValueError:
            self._answer(sock, {"error": "not a JSON request"})
            return
        if request.get("command") != "rewrite_selection":
            self._answer(sock, {"error": f"unknown command {request.get('command')!r}"})
            return
        preset = request.get("preset")
        options = request.get("options") or {}
        if not isinstance(preset, str | None) or not isinstance(options, dict):
            self._answer(sock, {"error": "preset must be a string, options an object"})
            return
        log.info("tray socket: rewrite_selection")
        self.rewrite_selection.emit(
            preset, options, lambda result: self._answer(sock, {"result": result})
        )

    def _answer(self, sock: QLocalSocket, message: dict[str, Any]) -> None:
        if sock.state() == QLocalSocket.LocalSocketState.ConnectedState:
            sock.write(json.dumps(message).encode() + b"\n")
            sock.flush()
            sock.disconnectFromServer()
