"""hello and status."""

from __future__ import annotations

import time
from typing import Any

from daemon import PROTOCOL_VERSION, __version__
from daemon.app import App, auto_engine
from daemon.errors import InvalidParams, UnsupportedProtocol
from daemon.hardening import state
from daemon.rpc import Call, Register

CAPABILITIES = ["chat", "rewrite", "cancel", "models", "streaming", "plugins"]


async def hello(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    version = params.get("protocol", PROTOCOL_VERSION)
    if not isinstance(version, int) or isinstance(version, bool):
        raise InvalidParams("protocol must be an integer", field="protocol")
    if version != PROTOCOL_VERSION:
        raise UnsupportedProtocol(
            f"this daemon speaks protocol {PROTOCOL_VERSION}, the client asked for {version}; "
            "update the client or the daemon so they match",
            supported=[PROTOCOL_VERSION],
        )
    return {
        "server": "hearth",
        "version": __version__,
        "protocol": PROTOCOL_VERSION,
        "capabilities": CAPABILITIES,
    }


async def status(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    app = call.app
    runners = app.scheduler.runners()
    return {
        "version": __version__,
        "pid": app.pid,
        "socket": str(app.paths.socket),
        "engine": app.config.engine if app.config.engine != "auto" else auto_engine(),
        "models_loaded": sorted({r["model"] for r in runners}),
        "runners": runners,
        "queue": app.scheduler.queue_depth(),
        "requests": app.scheduler.requests(),
        "uptime_s": round(time.time() - app.started, 1),
        "keep_alive_s": app.config.keep_alive,
        # Never waits: the vault and the audit log may still wait on the OS keychain.
        "network": {
            "mode": app.egress.policy.mode.value,
            "blocked": app.egress.guard.blocked_count,
            "audit": app.egress.state(),
        }
        if app.ready
        else {"mode": None, "blocked": 0, "audit": "starting"},
        "vault": app.vault.state() if app.ready else {"state": "starting", "reason": "starting"},
        "memory": app.memory.status() if app.memory else None,
        "isolation": isolation(app),
    }


def isolation(app: App) -> dict[str, Any]:
    """How the daemon and its runners are kept apart from the network and from each other."""
    live = [r["pid"] for r in app.scheduler.runners()]
    return {"daemon": state(), **app.sandbox.status(live)}


def register(add: Register) -> None:
    add("hello", hello)
    add("status", status)
