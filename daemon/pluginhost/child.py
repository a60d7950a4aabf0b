"""The plugin process: ``python -m daemon.pluginhost.child FD``.

FD is its end of a socketpair, its only channel to the daemon (JSON-RPC, one object
per line, both ways). The daemon's first request is ``setup``: the child sandboxes
itself (sandbox.apply), refuses to go on if a required layer is missing, imports the
plugin's module and answers with what the module declares. Then it serves ``invoke``
requests one at a time; while one runs, each ``ctx`` use is a request to the daemon.

Kept to the standard library, the SDK and the sandbox: it imports nothing it does not
need before the sandbox is up.
"""

from __future__ import annotations

import ctypes
import errno
import importlib.util
import json
import os
import signal
import socket
import sys
import traceback
from pathlib import Path
from typing import Any

from daemon.pluginhost import sandbox
from plugins.sdk.context import Context, FileEvent
from plugins.sdk.errors import HearthError, from_kind
from plugins.sdk.plugin import Plugin

PR_SET_PDEATHSIG = 1
EXIT_REFUSED = 78  # EX_CONFIG: the sandbox could not be built; the plugin never ran
MAIN_PID = os.getpid()


class Failure(Exception):
    """An error to send back as a JSON-RPC error with ``kind`` and ``data``."""

    def __init__(self, kind: str, message: str, **data: Any) -> None:
        super().__init__(message)
        self.kind, self.message, self.data = kind, message, data


class Channel:
    """The plugin's end of the socketpair."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader = sock.makefile("rb")
        self.next_id = 0

    def send(self, obj: dict[str, Any]) -> None:
        self.sock.sendall(json.dumps(obj, separators=(",", ":")).encode() + b"\n")

    def read(self) -> dict[str, Any]:
        line = self.reader.readline()
        if not line:
            os._exit(0)  # the daemon is gone: nothing left to serve
        msg: dict[str, Any] = json.loads(line)
        return msg

    def call(self, method: str, params: dict[str, Any]) -> Any:
        """A ctx request: wait for its answer (the daemon sends nothing else meanwhile)."""
        self.next_id += 1
        rid = self.next_id
        self.send({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
        while True:
            msg = self.read()
            if "method" in msg:  # the daemon runs one invocation at a time: refuse others
                self.reply_error(msg.get("id"), Failure("busy", "the plugin is busy"))
                continue
            if msg.get("id") != rid:
                continue
            if "error" in msg:
                data = dict(msg["error"].get("data") or {})
                kind = str(data.pop("kind", "error"))
                raise from_kind(kind, str(msg["error"].get("message", "")), data)
            return msg["result"]

    def reply(self, rid: Any, result: Any) -> None:
        self.send({"jsonrpc": "2.0", "id": rid, "result": result})

    def reply_error(self, rid: Any, failure: Failure) -> None:
        error = {
            "code": -32000,
            "message": failure.message,
            "data": {"kind": failure.kind, **failure.data},
        }
        self.send({"jsonrpc": "2.0", "id": rid, "error": error})


def load(entry: Path, plugin_id: str) -> Plugin:
    """Import the plugin's module and find its ``Plugin``."""
    sys.path.insert(0, str(entry.parent))
    spec = importlib.util.spec_from_file_location(
        f"hearth_plugin_{plugin_id.replace('-', '_')}", entry
    )
    if spec is None or spec.loader is None:
        raise Failure("plugin_failed", f"cannot import {entry.name}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    found = [v for v in vars(module).values() if isinstance(v, Plugin)]
    if len(found) != 1:
        raise Failure(
            "plugin_failed",
            f"{entry.name} must create exactly one Plugin() (found {len(found)})",
        )
    return found[0]


def classify(exc: BaseException) -> Failure:
    """The error an invocation ends with: a limit, a refusal passed through, or a failure."""
    if isinstance(exc, HearthError):
        return Failure(exc.kind, exc.message, **exc.data)
    if isinstance(exc, Failure):
        return exc
    if isinstance(exc, MemoryError):
        return Failure("plugin_limit", "the plugin ran out of its memory limit", limit="memory")
    if isinstance(exc, OSError) and exc.errno == errno.EAGAIN and _from_fork(exc):
        return Failure(
            "plugin_limit",
            "the plugin hit its process limit (a fork was refused)",
            limit="processes",
        )
    if isinstance(exc, RecursionError):
        return Failure("plugin_failed", f"RecursionError: {exc}", error="RecursionError")
    text = f"{type(exc).__name__}: {exc}"
    return Failure("plugin_failed", text, error=type(exc).__name__)


def _from_fork(exc: BaseException) -> bool:
    frames = traceback.extract_tb(exc.__traceback__)
    return any(
        "fork" in (f.line or "") or f.name in ("_execute_child", "_fork_exec") for f in frames
    )


def invoke(plugin: Plugin, channel: Channel, setup: dict[str, Any], params: dict[str, Any]) -> Any:
    kind, name = params["kind"], params["name"]
    ctx = Context(channel, setup["id"], Path(setup["data_dir"]), kind)
    if kind == "command":
        fn = plugin.commands.get(name)
        if fn is None:
            known = ", ".join(plugin.commands) or "none"
            raise Failure("not_found", f"no command {name!r} in this plugin (commands: {known})")
        return fn(ctx, *params.get("args", []))
    entry = plugin.triggers.get(name)
    if entry is None:
        raise Failure("not_found", f"no trigger {name!r} in this plugin")
    spec, fn = entry
    if spec["kind"] == "file":
        event = params["event"]
        return fn(ctx, FileEvent(event["kind"], Path(event["path"])))
    return fn(ctx)


def serve(channel: Channel) -> None:
    first = channel.read()
    if first.get("method") != "setup":
        os._exit(EXIT_REFUSED)
    setup = first["params"]
    report = sandbox.apply(setup["sandbox"])
    if report["refused"]:
        why = ", ".join(report["refused"])
        channel.reply_error(
            first["id"],
            Failure(
                "not_available",
                f"the plugin sandbox is incomplete on this system (missing: {why}); "
                "the plugin was not started",
                missing=report["missing"],
            ),
        )
        os._exit(EXIT_REFUSED)
    try:
        plugin = load(Path(setup["entry"]), setup["id"])
        described = plugin.describe()
    except BaseException as exc:
        traceback.print_exc()
        channel.reply_error(first["id"], classify(exc))
        os._exit(1)
    channel.reply(first["id"], {**described, "sandbox": report, "pid": os.getpid()})
    while True:
        msg = channel.read()
        if msg.get("method") == "stop":
            os._exit(0)
        if msg.get("method") != "invoke":
            channel.reply_error(msg.get("id"), Failure("method_not_found", "unknown request"))
            continue
        try:
            result = invoke(plugin, channel, setup, msg["params"])
            json.dumps(result)
        except BaseException as exc:
            if os.getpid() != MAIN_PID:
                os._exit(70)  # a forked copy must never answer for the plugin
            failure = classify(exc)
            if failure.kind == "plugin_failed":
                traceback.print_exc()
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                failure = Failure("plugin_failed", f"the plugin tried to exit ({exc!r})")
            channel.reply_error(msg["id"], failure)
            continue
        if os.getpid() != MAIN_PID:
            os._exit(0)
        channel.reply(msg["id"], result)


def main() -> None:
    # If the daemon dies, so does the plugin, even one stuck in a loop that never reads.
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() == 1:
        os._exit(0)  # the daemon died before the line above
    fd = int(sys.argv[1])
    serve(Channel(socket.socket(fileno=fd)))


if __name__ == "__main__":
    main()
