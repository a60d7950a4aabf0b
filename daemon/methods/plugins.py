"""plugins.*: manage plugins, run their commands, and the tray's view of them.

The plugins' own requests (``ctx``) never arrive here: they come over each plugin's
socketpair and are served by daemon.pluginhost.services.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from daemon.errors import InvalidParams
from daemon.methods import params as p
from daemon.pluginhost.host import PluginHost
from daemon.pluginhost.manifest import Permissions
from daemon.rpc import Call, Register


def _host(call: Call) -> PluginHost:
    host = call.app.plugins
    assert host is not None, "the plugin host starts with the daemon"
    return host


async def plugins_list(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    return {"plugins": _host(call).list()}


async def plugins_info(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    return _host(call).describe(p.required_str(params, "id"))


async def plugins_install(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    host = _host(call)
    plugin_id = await host.install(Path(p.required_str(params, "path")))
    return host.describe(plugin_id)


async def plugins_enable(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    """Enable with the permissions the user was shown (they must cover the manifest's)."""
    host = _host(call)
    plugin_id = p.required_str(params, "id")
    if "permissions" not in params:
        raise InvalidParams(
            "permissions is required: send back the permissions from plugins.info that the "
            "user approved",
            field="permissions",
        )
    granted = Permissions.from_dict(params["permissions"], "permissions")
    await host.enable(plugin_id, granted)
    return host.describe(plugin_id)


async def plugins_disable(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    host = _host(call)
    plugin_id = p.required_str(params, "id")
    await host.disable(plugin_id)
    return host.describe(plugin_id)


async def plugins_rm(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    plugin_id = p.required_str(params, "id")
    keys = await _host(call).remove(plugin_id)
    return {"id": plugin_id, "removed": True, "storage_keys_deleted": keys}


def _args(params: dict[str, Any]) -> list[str]:
    args = params.get("args", [])
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise InvalidParams("args must be a list of strings", field="args")
    return args


async def plugins_run(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    plugin_id = p.required_str(params, "id")
    command = p.required_str(params, "command")
    result = await _host(call).run(plugin_id, command, _args(params))
    return {"id": plugin_id, "command": command, "result": result}


async def plugins_hotkey(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    plugin_id = p.required_str(params, "id")
    return await _host(call).fire_hotkey(plugin_id, p.required_str(params, "keys"))


async def plugins_logs(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    host = _host(call)
    plugin_id = p.required_str(params, "id")
    limit = params.get("limit", 200)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 500:
        raise InvalidParams("limit must be an integer from 1 to 500", field="limit")
    host.catalog.get(plugin_id)
    logbook = host.logbook(plugin_id)
    if not logbook.entries:
        await logbook.load()
    return {"id": plugin_id, "entries": logbook.tail(limit), "persisted": logbook.persisted}


async def plugins_notifications(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    return {"notifications": list(_host(call).notifications)}


async def plugins_watch(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    """Stream plugins.notification until cancelled (the tray keeps one open)."""
    host = _host(call)
    done = asyncio.Event()
    sent = 0

    def send(note: dict[str, Any]) -> None:
        nonlocal sent
        sent += 1
        call.notify("plugins.notification", {"id": call.id, **note})

    call.on_cancel.append(done.set)
    host.subscribers.add(send)
    try:
        if not call.cancelled:
            await done.wait()
    finally:
        host.subscribers.discard(send)
    return {"sent": sent}


def register(add: Register) -> None:
    add("plugins.list", plugins_list)
    add("plugins.info", plugins_info)
    add("plugins.install", plugins_install)
    add("plugins.enable", plugins_enable)
    add("plugins.disable", plugins_disable)
    add("plugins.rm", plugins_rm)
    add("plugins.run", plugins_run)
    add("plugins.hotkey", plugins_hotkey)
    add("plugins.logs", plugins_logs)
    add("plugins.notifications", plugins_notifications)
    add("plugins.watch", plugins_watch)
