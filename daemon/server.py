"""The local-socket server: peer check, framing, dispatch, streaming, cancel, limits.

It knows nothing about models: handlers from daemon.methods do the work, and get a
Call through which they stream notifications and learn of cancellation.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import socket
import struct
import sys
from typing import Any, TypeGuard

from daemon import peers, protocol
from daemon.app import App
from daemon.errors import (
    Busy,
    HearthError,
    InvalidParams,
    InvalidRequest,
    LineTooLong,
    MethodNotFound,
    RunnerFailed,
)
from daemon.rpc import Call, Handler

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 64  # concurrent requests per connection
MAX_WRITE_BUFFER = 16 << 20  # a client that stops reading is dropped past this
DRAIN_TIMEOUT = 30.0


def peer_uid(sock: socket.socket) -> int:
    """The uid of the process at the other end of a Unix socket."""
    if hasattr(socket, "SO_PEERCRED"):
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        return int(struct.unpack("3i", raw)[1])
    if sys.platform == "darwin":  # LOCAL_PEERCRED at SOL_LOCAL: struct xucred
        raw = sock.getsockopt(0, 0x001, struct.calcsize("Ii16I") + 4)
        return int(struct.unpack_from("II", raw)[1])
    raise OSError("cannot check the peer's uid on this platform")


class Connection:
    def __init__(self, server: Server, number: int, writer: asyncio.StreamWriter) -> None:
        self.server = server
        self.number = number
        self.writer = writer
        self.calls: dict[Any, Call] = {}  # by id, for cancel
        self.tasks: dict[asyncio.Task[None], Call] = {}  # all in flight, with an id or not

    def reply(self, rid: protocol.Id, outcome: Any) -> None:
        """Send a request's one reply: its result, or the HearthError it ended with.

        Every reply leaves through here, so it always goes out: one that cannot be encoded
        becomes an internal error rather than silence."""
        if isinstance(outcome, HearthError):
            msg = protocol.error(rid, outcome)
        else:
            msg = protocol.response(rid, outcome)
        try:
            data = protocol.encode(msg)
        except (TypeError, ValueError):
            log.exception("a reply could not be encoded")
            data = protocol.encode(protocol.error(rid, RunnerFailed("internal error: bad reply")))
        self._write(data)

    def notify(self, method: str, params: dict[str, Any]) -> None:
        self._write(protocol.encode(protocol.notification(method, params)))

    def _write(self, data: bytes) -> None:
        if self.writer.is_closing():
            return
        self.writer.write(data)
        if self.writer.transport.get_write_buffer_size() > MAX_WRITE_BUFFER:
            log.warning("connection %d does not read its replies; closing it", self.number)
            self.writer.transport.abort()

    async def flush(self) -> None:
        with contextlib.suppress(ConnectionError, TimeoutError):
            await asyncio.wait_for(self.writer.drain(), DRAIN_TIMEOUT)

    async def handle(self, req: protocol.Request, call: Call) -> None:
        outcome: Any
        try:
            handler = self.server.methods.get(req.method)
            if handler is None and not self.server.complete.is_set():
                await self.server.complete.wait()  # starting: the other methods still load
                handler = self.server.methods.get(req.method)
            if handler is None:
                raise MethodNotFound(f"method not found: {req.method}")
            outcome = await handler(call, req.params)
        except HearthError as exc:
            outcome = exc
        except Exception as exc:
            log.exception("method %s failed", req.method)
            outcome = RunnerFailed(f"internal error in {req.method}: {type(exc).__name__}")
        finally:
            self.calls.pop(req.id, None)
        if not req.is_notification:
            self.reply(req.id, outcome)
        await self.flush()

    def cancel(self, rid: int | str) -> bool:
        call = self.calls.get(rid)
        if call is None:
            return False
        call.cancel()
        return True

    def close(self) -> None:
        """The client left: cancel everything it asked for, notifications included."""
        for task, call in list(self.tasks.items()):
            call.cancel()
            task.cancel()

    def finished(self, task: asyncio.Task[None]) -> None:
        self.tasks.pop(task, None)


class Server:
    def __init__(self, app: App, methods: dict[str, Handler], complete: bool = True) -> None:
        self.app = app
        self.methods = methods
        self.complete = asyncio.Event()  # until set, an unknown method waits for add_methods
        if complete:
            self.complete.set()
        self.max_line = app.config.max_line_bytes
        self.connections: set[Connection] = set()
        self._numbers = itertools.count(1)
        self._server: asyncio.AbstractServer | None = None

    def add_methods(self, methods: dict[str, Handler]) -> None:
        """The rest of the methods, once loaded; requests waiting for them proceed."""
        self.methods.update(methods)
        self.complete.set()

    async def start(self, sock: socket.socket) -> None:
        """Serve on a listening Unix socket (daemon.activation binds or inherits it)."""
        self._server = await asyncio.start_unix_server(
            self._accept, sock=sock, limit=self.max_line + 1
        )

    async def close(self) -> None:
        if self._server:
            self._server.close()
        for conn in list(self.connections):
            conn.close()
            conn.writer.close()
        if self._server:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        try:
            uid = peer_uid(sock)
        except OSError:
            uid = -1
        if uid != os.getuid():
            log.warning("refused a connection from uid %d", uid)
            writer.transport.abort()
            return
        why = peers.refusal(sock, self.app.sandbox.pids())
        if why:
            log.warning("refused a connection: %s", why)
            writer.transport.abort()
            return
        conn = Connection(self, next(self._numbers), writer)
        self.connections.add(conn)
        try:
            await self._serve(conn, reader)
        finally:
            conn.close()
            self.connections.discard(conn)
            writer.close()

    async def _serve(self, conn: Connection, reader: asyncio.StreamReader) -> None:
        while True:
            try:
                line = await reader.readuntil(b"\n")
            except asyncio.IncompleteReadError:
                return
            except asyncio.LimitOverrunError:
                err = LineTooLong(
                    f"request line longer than {self.max_line} bytes (max_line_bytes); "
                    "the daemon closed the connection. Send less text at once."
                )
                conn.reply(None, err)
                await conn.flush()
                return
            except ConnectionError:
                return
            if not line.strip():
                continue
            self._dispatch(conn, line)

    def _dispatch(self, conn: Connection, line: bytes) -> None:
        rid: Any = None
        try:
            obj = protocol.decode(line)
            if isinstance(obj, list):
                raise InvalidRequest("batches are not supported: send one request per line")
            if isinstance(obj, dict):
                rid = obj.get("id")
            req = protocol.parse_request(obj)
            if req.id is not None and req.id in conn.calls:
                rid = None  # its id names the request in flight: that one's reply is the one
                raise InvalidRequest(
                    f"a request with id {req.id!r} is still in flight; use a new id",
                    duplicate_id=req.id,
                )
            if req.method == "cancel":
                self._cancel(conn, req)
                return
            if len(conn.tasks) >= MAX_IN_FLIGHT:
                raise Busy(f"more than {MAX_IN_FLIGHT} requests in flight on this connection")
        except HearthError as exc:
            conn.reply(rid if _valid_id(rid) else None, exc)
            return
        except Exception as exc:  # a bug must not drop the connection and its requests
            log.exception("could not dispatch a request")
            err = RunnerFailed(f"internal error: {type(exc).__name__}")
            conn.reply(rid if _valid_id(rid) else None, err)
            return
        call = Call(self.app, req.id, conn.number, conn.notify)
        if req.id is not None:
            conn.calls[req.id] = call
        task = asyncio.create_task(conn.handle(req, call))
        conn.tasks[task] = call
        task.add_done_callback(conn.finished)

    def _cancel(self, conn: Connection, req: protocol.Request) -> None:
        target = req.params.get("id")
        if not _valid_id(target):
            raise InvalidParams(
                "cancel needs the id of the request to stop: a number or a string", field="id"
            )
        found = conn.cancel(target)
        if not req.is_notification:
            conn.reply(req.id, {"cancelled": found})


def _valid_id(rid: Any) -> TypeGuard[int | str]:
    """A JSON-RPC request id we can echo and look up: a string or a number, never a bool."""
    return isinstance(rid, int | str) and not isinstance(rid, bool)
