"""What the daemon serves on a plugin's channel, each method checked against the
permissions the plugin's manifest asks for and the user granted.

| method | permission |
| --- | --- |
| ``model.generate``, ``model.chat`` | ``model`` (scheduled at background priority) |
| ``fetch`` | ``network`` lists the host; then the egress policy (caller ``plugin:ID``) |
| ``notify`` | ``notify`` |
| ``clipboard.read``, ``clipboard.write`` | ``clipboard`` |
| ``storage.get/set/delete/keys``, ``log`` | always: the plugin's own data |

A refusal is a typed ``permission_denied`` (``egress_denied`` for a host, written to
the audit log like every other outbound attempt); the plugin sees it as
``plugins.sdk.PermissionDenied``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import itertools
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from daemon.egress.gateway import parse_url
from daemon.egress.policy import Rule, normalize_host
from daemon.errors import EgressDenied, InvalidParams, MethodNotFound, PermissionDenied
from daemon.methods import params as p
from daemon.pluginhost import clipboard
from daemon.pluginhost.logbook import PluginLog
from daemon.pluginhost.manifest import Permissions
from daemon.rpc import Call

if TYPE_CHECKING:
    from daemon.app import App

MAX_FETCH = 8 << 20
MAX_VALUE = 256 << 10
MAX_KEY = 200
LEVELS = ("debug", "info", "warning", "error")
Notify = Callable[[str, str, str], None]  # (plugin id, title, text)
_calls = itertools.count(1)


def background(options: dict[str, Any]) -> dict[str, Any]:
    """Plugin model calls run at background priority, whatever they ask: a person's chat
    or rewrite goes first, pausing them (issue 17), and a plugin cannot make the hotkey
    wait. The one place a plugin call's scheduling options are set."""
    return {**options, "priority": "background"}


def caller(plugin_id: str) -> str:
    """The plugin's name in the audit log and in egress rules."""
    return f"plugin:{plugin_id}"


class PluginServices:
    def __init__(
        self,
        app: App,
        plugin_id: str,
        permissions: Permissions,
        logbook: PluginLog,
        notify: Notify,
        client: int,
    ) -> None:
        self.app = app
        self.id = plugin_id
        self.permissions = permissions
        self.log = logbook
        self._notify = notify
        self.client = client  # the scheduler's fairness unit: each plugin is its own client
        self._methods: dict[str, tuple[str | None, Callable[[dict[str, Any]], Awaitable[Any]]]] = {
            "model.generate": ("model", self.generate),
            "model.chat": ("model", self.chat),
            "fetch": ("network", self.fetch),
            "notify": ("notify", self.notify),
            "clipboard.read": ("clipboard", self.clipboard_read),
            "clipboard.write": ("clipboard", self.clipboard_write),
            "storage.get": (None, self.storage_get),
            "storage.set": (None, self.storage_set),
            "storage.delete": (None, self.storage_delete),
            "storage.keys": (None, self.storage_keys),
            "log": (None, self.write_log),
        }

    async def serve(self, method: str, params: dict[str, Any]) -> Any:
        entry = self._methods.get(method)
        if entry is None:
            raise MethodNotFound(f"plugins cannot call {method!r}")
        permission, handler = entry
        if permission is not None and not getattr(self.permissions, permission):
            raise PermissionDenied(
                f"{self.id} may not use {method}: it has no '{permission}' permission "
                "(its plugin.toml must ask for it, and you grant it with "
                f"`hearth plugins enable {self.id}`)",
                plugin=self.id,
                permission=permission,
            )
        return await handler(params)

    # -- model -----------------------------------------------------------------------

    async def _model(self, params: dict[str, Any], messages: list[dict[str, str]]) -> Any:
        from daemon.methods.chat import generate  # the same path as a client's chat

        options = params.get("options") or {}
        if not isinstance(options, dict):
            raise InvalidParams("options must be an object", field="options")
        call = Call(self.app, f"{caller(self.id)}#{next(_calls)}", self.client, _no_notify)
        try:
            result = await generate(call, {"options": background(options)}, messages, "plugin")
        except asyncio.CancelledError:
            call.cancel()  # the plugin died or was killed: stop generating for it
            raise
        answer = {key: result[key] for key in ("text", "finish_reason", "tokens", "model")}
        if "json" in result:  # options.format: the parsed, validated value
            answer["json"] = result["json"]
        return answer

    async def generate(self, params: dict[str, Any]) -> Any:
        prompt = p.required_str(params, "prompt")
        system = p.optional_str(params, "system")
        messages = [{"role": "system", "content": system}] if system else []
        return await self._model(params, [*messages, {"role": "user", "content": prompt}])

    async def chat(self, params: dict[str, Any]) -> Any:
        return await self._model(params, p.messages(params))

    # -- network ---------------------------------------------------------------------

    async def fetch(self, params: dict[str, Any]) -> Any:
        url = p.required_str(params, "url")
        method = (p.optional_str(params, "method") or "GET").upper()
        headers = params.get("headers") or {}
        if not isinstance(headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            raise InvalidParams("headers must map names to strings", field="headers")
        body = _body(params.get("body"))
        egress = self.app.egress
        gateway = egress.usable_gateway()
        who = caller(self.id)
        purpose = f"plugin {self.id} ctx.fetch"
        host = normalize_host(parse_url(url).host)
        if not any(Rule(h, "*").matches(who, host) for h in self.permissions.network):
            granted = ", ".join(self.permissions.network) or "no host"
            error = EgressDenied(
                f"{self.id} may not reach {host}: its manifest grants {granted}",
                caller=who,
                host=host,
                plugin=self.id,
            )
            await asyncio.to_thread(
                gateway.refuse, who, purpose, method, url, error, "plugin permissions"
            )
            raise error
        reply = await asyncio.to_thread(
            egress.run,
            gateway.request,
            who,
            purpose,
            method,
            url,
            headers=headers,
            content=body,
            max_body=MAX_FETCH,
        )
        return {
            "status": reply.status,
            "headers": {k: v for k, v in reply.headers.items() if k.lower() != "set-cookie"},
            "body": base64.b64encode(reply.content).decode(),
            "url": reply.url,
        }

    # -- notify and clipboard --------------------------------------------------------

    async def notify(self, params: dict[str, Any]) -> Any:
        title = p.required_str(params, "title")[:200]
        text = (p.optional_str(params, "text") or "")[:4000]
        self._notify(self.id, title, text)
        return {"shown": True}

    async def clipboard_read(self, params: dict[str, Any]) -> Any:
        return {"text": await asyncio.to_thread(clipboard.read)}

    async def clipboard_write(self, params: dict[str, Any]) -> Any:
        text = params.get("text")
        if not isinstance(text, str) or len(text) > clipboard.MAX_BYTES:
            raise InvalidParams("text must be a string of at most 1 MiB", field="text")
        await asyncio.to_thread(clipboard.write, text)
        return {"written": len(text)}

    # -- storage and log ---------------------------------------------------------------

    def _key(self, params: dict[str, Any]) -> str:
        key = p.required_str(params, "key")
        if len(key) > MAX_KEY or "\0" in key:
            raise InvalidParams(f"a storage key is 1-{MAX_KEY} characters, no NUL", field="key")
        return key

    async def storage_get(self, params: dict[str, Any]) -> Any:
        key = self._key(params)
        missing = object()
        vault = self.app.vault
        value = await asyncio.to_thread(lambda: vault.require().plugin_get(self.id, key, missing))
        return {"found": value is not missing, "value": None if value is missing else value}

    async def storage_set(self, params: dict[str, Any]) -> Any:
        key = self._key(params)
        value = params.get("value")
        try:
            size = len(json.dumps(value))
        except (TypeError, ValueError):
            raise InvalidParams("value must be JSON", field="value") from None
        if size > MAX_VALUE:
            raise InvalidParams(f"a stored value is at most {MAX_VALUE} bytes", field="value")
        vault = self.app.vault
        await asyncio.to_thread(lambda: vault.require().plugin_put(self.id, key, value))
        return {"stored": True}

    async def storage_delete(self, params: dict[str, Any]) -> Any:
        key = self._key(params)
        vault = self.app.vault
        await asyncio.to_thread(lambda: vault.require().plugin_delete(self.id, key))
        return {"deleted": True}

    async def storage_keys(self, params: dict[str, Any]) -> Any:
        vault = self.app.vault
        keys = await asyncio.to_thread(lambda: vault.require().plugin_keys(self.id))
        return {"keys": [k for k in keys if "\0" not in k]}

    async def write_log(self, params: dict[str, Any]) -> Any:
        level = p.optional_str(params, "level") or "info"
        if level not in LEVELS:
            raise InvalidParams(f"level must be one of {', '.join(LEVELS)}", field="level")
        self.log.add("plugin", p.required_str(params, "message"), level)
        return {"logged": True}


def _no_notify(method: str, params: dict[str, Any]) -> None:
    """Plugins get the whole answer at once: deltas are not streamed to them."""


def _body(raw: Any) -> bytes | None:
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise InvalidParams("body must be base64 text", field="body")
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidParams("body must be base64 text", field="body") from None
