"""net.*, audit.*, models.pull and chat's ``route: "remote"``: the egress over the protocol.

Outbound calls block (the gateway is a synchronous client), so they run in worker
threads; their progress and deltas are handed back to the event loop to be sent.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import Any

from daemon import catalog
from daemon.egress import guard
from daemon.egress.catalog_pull import consent_gateway, pull_entry
from daemon.egress.install import pull_model
from daemon.egress.pull import DEFAULT_ENDPOINT, Progress
from daemon.egress.service import Egress
from daemon.egress.settings import Remote
from daemon.errors import Cancelled, InvalidParams
from daemon.methods import params as p
from daemon.methods.session import isolation
from daemon.presets import RewriteCleaner
from daemon.rpc import Call, Register

TEST_HOOKS = "HEARTH_TEST_HOOKS"
PROGRESS_INTERVAL = 0.1  # seconds between models.pull.progress notifications
DNS_QUERY = bytes.fromhex("123401000001000000000000076578616d706c6503636f6d0000010001")


def _egress(call: Call) -> Egress:
    return call.app.egress


def _sender(call: Call, method: str) -> Callable[[dict[str, Any]], None]:
    """notify() for worker threads: the notification is sent from the event loop."""
    loop = asyncio.get_running_loop()

    def send(params: dict[str, Any]) -> None:
        loop.call_soon_threadsafe(call.notify, method, {"id": call.id, **params})

    return send


def _stop_flag(call: Call, egress: Egress) -> Callable[[], bool]:
    """Whether the request was cancelled or the daemon is shutting down."""
    cancelled = threading.Event()
    call.on_cancel.append(cancelled.set)
    if call.cancelled:
        cancelled.set()
    return lambda: cancelled.is_set() or egress.closing.is_set()


# -- net.* -------------------------------------------------------------------------------


async def net_status(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    return {**_egress(call).status(), "isolation": isolation(call.app)}


async def net_set_mode(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    egress = _egress(call)
    egress.set_policy(egress.policy.with_mode(p.required_str(params, "mode")), "net.set_mode")
    return egress.status()


def _rule(params: dict[str, Any]) -> tuple[str, str]:
    return p.required_str(params, "host"), p.optional_str(params, "caller") or "*"


async def net_allow(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    egress = _egress(call)
    egress.set_policy(egress.policy.allow(*_rule(params)), "net.allow")
    return egress.status()


async def net_revoke(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    egress = _egress(call)
    policy = egress.policy.revoke(*_rule(params))
    revoked = policy != egress.policy
    egress.set_policy(policy, "net.revoke")
    return {**egress.status(), "revoked": revoked}


async def net_remote(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    """Configure the remote server ({url, model, api_key?}); {url: null} forgets it."""
    egress = _egress(call)
    url = p.optional_str(params, "url")
    api_key = p.optional_str(params, "api_key")
    remote = Remote(url, p.required_str(params, "model")) if url else None
    await asyncio.to_thread(egress.set_remote, remote, api_key, "net.remote")
    return egress.status()


async def net_proxy(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    """Send outbound calls through a proxy ({url}); {url: null} goes direct again."""
    egress = _egress(call)
    await asyncio.to_thread(egress.set_proxy, p.optional_str(params, "url"), "net.proxy")
    return egress.status()


# -- audit.* -----------------------------------------------------------------------------


async def audit_list(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    since = params.get("since")
    if since is not None and (isinstance(since, bool) or not isinstance(since, int | float)):
        raise InvalidParams("since must be a time in seconds since the epoch", field="since")
    limit = params.get("limit", 1000)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1_000_000:
        raise InvalidParams("limit must be an integer from 1 to 1000000", field="limit")
    caller = p.optional_str(params, "caller")
    entries = await asyncio.to_thread(_egress(call).entries, since, caller, limit)
    return {"entries": entries}


async def audit_verify(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    return await asyncio.to_thread(_egress(call).verify)


async def audit_reset(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    return await asyncio.to_thread(_egress(call).reset_log)


# -- models.pull -------------------------------------------------------------------------


def _progress(call: Call, egress: Egress) -> Callable[..., Progress]:
    """progress(**extra) -> a byte-progress callback sending models.pull.progress
    {id, done, total, **extra} at most every PROGRESS_INTERVAL and at the end of a file;
    it raises Cancelled once the request is cancelled, which stops the download."""
    send = _sender(call, "models.pull.progress")
    stopped = _stop_flag(call, egress)
    last = 0.0

    def for_file(**extra: Any) -> Progress:
        def progress(done: int, total: int | None) -> None:
            nonlocal last
            if stopped():
                raise Cancelled("the pull was stopped; pull again to resume where it stopped")
            now = time.monotonic()
            if now - last >= PROGRESS_INTERVAL or done == total:
                last = now
                send({"done": done, "total": total, **extra})

        return progress

    return for_file


async def models_pull(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    """Pull a GGUF file from a hub, or a catalog model by name; streams
    models.pull.progress {id, done, total}."""
    if params.get("model") is not None:
        return await _pull_catalog(call, params)
    egress = _egress(call)
    repo = p.required_str(params, "repo")
    file = p.optional_str(params, "file")
    revision = p.optional_str(params, "revision") or "main"
    sha256 = p.optional_str(params, "sha256")
    endpoint = p.optional_str(params, "endpoint") or DEFAULT_ENDPOINT
    gateway = egress.usable_gateway()
    progress = _progress(call, egress)()
    info, pulled = await asyncio.to_thread(
        egress.run, pull_model, gateway, call.app.registry, repo, file, revision=revision,
        endpoint=endpoint, expected_sha256=sha256, progress=progress,
    )  # fmt: skip
    return {**info.to_dict(), "repo": repo, "file": pulled, "revision": revision}


async def _pull_catalog(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    """models.pull {model: NAME, format?, consent?, endpoint?}: a catalog model."""
    egress = _egress(call)
    for key in ("repo", "file", "revision", "sha256"):
        if params.get(key) is not None:
            raise InvalidParams(f"a catalog pull takes no {key}: the catalog pins it", field=key)
    entries = await asyncio.to_thread(catalog.load)
    name = p.required_str(params, "model")
    entry = catalog.find(entries, name)
    if entry is None:
        names = ", ".join(e.name for e in entries)
        raise InvalidParams(f"{name!r} is not in the catalog (it has: {names}); "
                            "`hearth models catalog` lists them", field="model")  # fmt: skip
    fmt = p.optional_str(params, "format") or catalog.this_machine().format
    if fmt not in catalog.FORMATS:
        raise InvalidParams("format must be gguf or mlx", field="format")
    endpoint = p.optional_str(params, "endpoint") or DEFAULT_ENDPOINT
    consent = params.get("consent", False)
    if not isinstance(consent, bool):
        raise InvalidParams("consent must be true or false", field="consent")
    gateway = egress.usable_gateway()
    if consent:
        audit = egress.audit
        assert audit is not None  # usable_gateway() says the log is open
        gateway = consent_gateway(audit, endpoint, f"catalog pull {entry.model_name(fmt)}")
    per_file = _progress(call, egress)

    def progress(file: str, index: int, count: int) -> Progress:
        return per_file(file=file, files_done=index, files_total=count)

    try:
        info, source = await asyncio.to_thread(
            egress.run, pull_entry, gateway, call.app.registry, entry, fmt,
            endpoint=endpoint, progress=progress,
        )  # fmt: skip
    finally:
        if gateway is not egress.gateway:
            gateway.close()
    default = await asyncio.to_thread(call.app.registry.resolve, None)
    return {**info.to_dict(), "catalog": entry.name, "source": source,
            "default": default.name == info.name}  # fmt: skip


# -- chat with route "remote" ------------------------------------------------------------


async def remote_chat(
    call: Call, params: dict[str, Any], event: str = "chat.delta",
    cleaner: RewriteCleaner | None = None,
) -> dict[str, Any]:  # fmt: skip
    """A chat answered by the configured remote server, through the gateway. Called by
    chat for any route other than "local", and by rewrite for a preset routed "remote";
    there is never a fallback to the local model. ``cleaner``: a rewrite's clean-up."""
    route = params.get("route")
    if route != "remote":
        raise InvalidParams("route must be 'local' or 'remote'", field="route")
    messages = p.messages(params)
    options = {k: v for k, v in p.generation_options(params).items() if k not in p.LOCAL_ONLY}
    egress = _egress(call)
    client, model = egress.remote_client(p.optional_str(params, "model"))
    send = _sender(call, event)
    stopped = _stop_flag(call, egress)
    pieces: list[str] = []

    def on_delta(text: str) -> None:
        if stopped():
            raise Cancelled("cancelled")
        pieces.append(text)
        if cleaner is not None:
            text = cleaner.feed(text)
        if text:
            send({"text": text})

    if stopped():
        raise Cancelled("cancelled before it started")
    started = time.monotonic()
    try:
        answer = await asyncio.to_thread(
            egress.run, client.complete, messages, model=model, options=options, on_delta=on_delta
        )
        text, finish, answered_by, usage = (
            answer.text, answer.finish_reason, answer.model or model, answer.usage or {},
        )  # fmt: skip
    except Cancelled:
        text, finish, answered_by, usage = "".join(pieces), "cancelled", model, {}
    if cleaner is not None:
        rest = cleaner.feed("", final=True)
        if rest:
            call.notify(event, {"id": call.id, "text": rest})
        text = cleaner.text
    return {
        "text": text,
        "finish_reason": finish or "stop",
        "model": answered_by,
        "engine": "remote",
        "route": "remote",
        "host": client.host,
        "tokens": {
            "prompt": usage.get("prompt_tokens"),
            "completion": usage.get("completion_tokens"),
        },
        "timings": {"total_ms": round((time.monotonic() - started) * 1000, 1)},
    }


# -- test hook ---------------------------------------------------------------------------


async def phone_home(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    """Reach out the way a dependency might, outside the gateway. Registered only when
    HEARTH_TEST_HOOKS=1: the tests use it to show the guard refuses and records it."""
    how = p.required_str(params, "how")
    host = p.required_str(params, "host")
    port = params.get("port", 80)
    if how not in ("urlopen", "connect", "dns"):
        raise InvalidParams("how must be urlopen, connect or dns", field="how")

    def attempt() -> None:
        if how == "urlopen":
            urllib.request.urlopen(f"http://{host}:{port}/", timeout=5).close()
        elif how == "dns":  # a query for example.com, as a resolver library would send it
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                udp.sendto(DNS_QUERY, (host, port))
        else:
            socket.create_connection((host, port), timeout=5).close()

    try:
        await asyncio.to_thread(attempt)
    except OSError as exc:
        blocked = isinstance(exc, guard.EgressBlocked) or isinstance(
            getattr(exc, "reason", None), guard.EgressBlocked
        )
        return {"connected": False, "error": type(exc).__name__, "blocked": blocked}
    return {"connected": True, "error": None, "blocked": False}


def register(add: Register) -> None:
    add("net.status", net_status)
    add("net.set_mode", net_set_mode)
    add("net.allow", net_allow)
    add("net.revoke", net_revoke)
    add("net.remote", net_remote)
    add("net.proxy", net_proxy)
    add("audit.list", audit_list)
    add("audit.verify", audit_verify)
    add("audit.reset", audit_reset)
    add("models.pull", models_pull)
    if os.environ.get(TEST_HOOKS) == "1":
        add("debug.phone_home", phone_home)
