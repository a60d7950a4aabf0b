"""The plugin host: starts each enabled plugin in its own sandboxed process, wires its
triggers, queues their work, reloads user plugins when their files change, and keeps
the notifications the tray shows.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from watchdog.events import FileSystemEvent, FileSystemEventHandler

from daemon.errors import HearthError, InvalidParams, PermissionDenied
from daemon.pluginhost.catalog import Catalog, Grant
from daemon.pluginhost.logbook import PluginLog
from daemon.pluginhost.manifest import Permissions
from daemon.pluginhost.services import PluginServices, caller
from daemon.pluginhost.supervisor import PluginProcess
from daemon.pluginhost.triggers import Triggers, new_observer

if TYPE_CHECKING:
    from daemon.app import App

log = logging.getLogger(__name__)

QUEUE_MAX = 256  # trigger calls waiting per plugin; more are dropped (and counted)
RELOAD_DELAY = 0.5
Subscriber = Callable[[dict[str, Any]], None]
_clients = itertools.count(1)


class PluginHost:
    def __init__(self, app: App) -> None:
        self.app = app
        self.catalog = Catalog(app.paths)
        self.home = Path.home()
        self.processes: dict[str, PluginProcess] = {}
        self.triggers: dict[str, Triggers] = {}
        self.logs: dict[str, PluginLog] = {}
        self.queues: dict[str, deque[tuple[str, dict[str, Any] | None]]] = {}
        self.dropped: dict[str, int] = {}
        self.workers: dict[str, asyncio.Task[None]] = {}
        self.notifications: deque[dict[str, Any]] = deque(maxlen=100)
        self.subscribers: set[Subscriber] = set()
        self.observer = new_observer()
        self._reloads: dict[str, asyncio.TimerHandle] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._fingerprints: dict[str, tuple[tuple[str, int, int], ...]] = {}
        self._disable = _test_disabled_layers()
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Find the plugins and start the enabled ones (in the background). A failure here
        is logged: the daemon serves on without plugins rather than not at all."""
        try:
            await asyncio.to_thread(self.catalog.load)
            loop = asyncio.get_running_loop()
            self.observer.schedule(
                _Reloader(loop, self), str(self.catalog.user_dir), recursive=True
            )
        except OSError as exc:
            log.error("plugins are off: %s", exc)
            return
        for plugin_id in list(self.catalog.entries):
            if self.catalog.approved(plugin_id) is not None:
                self._spawn(self._launch(plugin_id))

    async def close(self) -> None:
        for handle in self._reloads.values():
            handle.cancel()
        await asyncio.gather(*(self._stop(pid) for pid in list(self.processes)))
        for task in self._tasks:
            task.cancel()
        self.observer.stop()
        await asyncio.to_thread(self.observer.join, 5)
        for logbook in self.logs.values():
            await logbook.flush()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def logbook(self, plugin_id: str) -> PluginLog:
        if plugin_id not in self.logs:
            self.logs[plugin_id] = PluginLog(plugin_id, self.app.vault)
        return self.logs[plugin_id]

    async def _launch(self, plugin_id: str) -> None:
        with contextlib.suppress(HearthError):  # already logged and shown in `list`
            await self.launch(plugin_id)

    def _lock(self, plugin_id: str) -> asyncio.Lock:
        """One change at a time per plugin: enable, reload, disable and start never mix."""
        return self._locks.setdefault(plugin_id, asyncio.Lock())

    async def launch(self, plugin_id: str) -> PluginProcess:
        """Start an enabled, approved plugin's process (and its triggers)."""
        existing = self.processes.get(plugin_id)
        if existing is not None:
            return existing
        async with self._lock(plugin_id):
            return await self._launch_locked(plugin_id)

    async def _launch_locked(self, plugin_id: str) -> PluginProcess:
        existing = self.processes.get(plugin_id)
        if existing is not None:
            return existing
        permissions = self.catalog.approved(plugin_id)
        manifest = self.catalog.manifest(plugin_id)
        if permissions is None:
            raise PermissionDenied(_not_enabled(plugin_id, self.catalog.needs_approval(plugin_id)))
        logbook = self.logbook(plugin_id)
        if not logbook.entries:
            await logbook.load()
        services = PluginServices(
            self.app, plugin_id, permissions, logbook, self.notify, client=-next(_clients)
        )
        process = PluginProcess(
            manifest,
            permissions,
            data_dir=self.catalog.data_dir(plugin_id),
            home=self.home,
            serve=services.serve,
            logbook=logbook,
            disable=self._disable,
        )
        process.on_ready = self._wire
        self.processes[plugin_id] = process
        self._fingerprints[plugin_id] = fingerprint(manifest.folder)
        await process.start()
        return process

    def _wire(self, process: PluginProcess) -> None:
        """(Re)arm a plugin's triggers from what its module declared."""
        old = self.triggers.pop(process.id, None)
        if old is not None:
            old.stop()
        triggers = Triggers(self.home, lambda h, e: self._fire(process.id, h, e))
        triggers.start(process.described["triggers"])
        for problem in triggers.problems:
            process.log.add("host", f"trigger not set up: {problem}", "error")
        self.triggers[process.id] = triggers

    async def _stop(self, plugin_id: str) -> None:
        triggers = self.triggers.pop(plugin_id, None)
        if triggers is not None:
            triggers.stop()
        worker = self.workers.pop(plugin_id, None)
        if worker is not None:
            worker.cancel()
        self.queues.pop(plugin_id, None)
        process = self.processes.pop(plugin_id, None)
        if process is not None:
            await process.stop()

    # -- triggers ----------------------------------------------------------------------

    def _fire(self, plugin_id: str, handler: str, event: dict[str, Any] | None) -> None:
        """Queue a trigger's call; the plugin's worker runs them one at a time."""
        queue = self.queues.setdefault(plugin_id, deque())
        if (handler, event) in queue:
            return  # the same file (or tick) is already waiting
        if len(queue) >= QUEUE_MAX:
            self.dropped[plugin_id] = self.dropped.get(plugin_id, 0) + 1
            return
        queue.append((handler, event))
        if plugin_id not in self.workers or self.workers[plugin_id].done():
            self.workers[plugin_id] = asyncio.ensure_future(self._work(plugin_id))

    async def _work(self, plugin_id: str) -> None:
        queue = self.queues[plugin_id]
        while queue:
            process = self.processes.get(plugin_id)
            if process is None:
                return
            if process.state in ("backoff", "starting", "restarting"):
                await asyncio.sleep(0.5)  # let the backoff run its course
                continue
            handler, event = queue.popleft()
            kind = next(
                (t["kind"] for t in process.described["triggers"] if t["handler"] == handler),
                "trigger",
            )
            params: dict[str, Any] = {"kind": kind, "name": handler}
            if event is not None:
                params["event"] = event
            try:
                await process.invoke(params)
            except HearthError as exc:
                process.log.add("host", f"{handler} ({kind}) failed: {exc.message}", "error")

    async def fire_hotkey(self, plugin_id: str, keys: str) -> dict[str, Any]:
        process = await self.launch(plugin_id)
        for trigger in process.described["triggers"]:
            if trigger["kind"] == "hotkey" and trigger["keys"] == keys.lower():
                result = await process.invoke({"kind": "hotkey", "name": trigger["handler"]})
                return {"result": result}
        raise InvalidParams(f"{plugin_id} has no hotkey {keys!r}", field="keys")

    # -- notifications -----------------------------------------------------------------

    def notify(self, plugin_id: str, title: str, text: str) -> None:
        note = {"plugin": plugin_id, "title": title, "text": text, "time": round(time.time(), 3)}
        self.notifications.append(note)
        self.logbook(plugin_id).add("host", f"notification: {title}: {text}")
        for subscriber in list(self.subscribers):
            subscriber(note)

    # -- management --------------------------------------------------------------------

    async def run(self, plugin_id: str, command: str, args: list[str]) -> Any:
        process = await self.launch(plugin_id)
        return await process.invoke({"kind": "command", "name": command, "args": args})

    async def install(self, path: Path) -> str:
        manifest = await asyncio.to_thread(self.catalog.install, path)
        await self.reload(manifest.id)
        return manifest.id

    async def enable(self, plugin_id: str, granted: Permissions) -> None:
        manifest = self.catalog.manifest(plugin_id)
        if not granted.covers(manifest.permissions):
            raise InvalidParams(
                f"{plugin_id} asks for more than the permissions given (its manifest may have "
                "changed): look again with `hearth plugins info`",
                field="permissions",
            )
        async with self._lock(plugin_id):
            await asyncio.to_thread(
                self.catalog.set_grant, plugin_id, Grant(True, manifest.permissions)
            )
            self._network_rules(plugin_id, manifest.permissions.network, allow=True)
            await self._stop(plugin_id)
            self.logbook(plugin_id).add(
                "host", "enabled; granted: " + "; ".join(manifest.permissions.describe())
            )
            await self._launch_locked(plugin_id)

    async def disable(self, plugin_id: str) -> None:
        self.catalog.get(plugin_id)
        async with self._lock(plugin_id):
            grant = self.catalog.grants.get(plugin_id)
            await self._stop(plugin_id)
            if grant is not None:
                self._network_rules(plugin_id, grant.permissions.network, allow=False)
                await asyncio.to_thread(self.catalog.set_grant, plugin_id, None)
            self.logbook(plugin_id).add("host", "disabled")

    async def remove(self, plugin_id: str) -> int:
        """Remove a user plugin, its grants, its data dir and its stored data."""
        self.catalog.get(plugin_id)
        await self.disable(plugin_id)
        await asyncio.to_thread(self.catalog.remove, plugin_id)
        logbook = self.logs.pop(plugin_id, None)
        if logbook is not None:
            logbook.discard()

        def clear() -> int:
            vault = self.app.vault.require()
            keys = [k for k in vault.plugin_keys(plugin_id) if "\0" not in k]
            vault.plugin_clear(plugin_id)  # its log too
            return len(keys)

        with contextlib.suppress(HearthError):
            return await asyncio.to_thread(clear)
        return 0

    def _network_rules(self, plugin_id: str, hosts: tuple[str, ...], allow: bool) -> None:
        """Granting a plugin a host is also an egress rule for it (and only for it)."""
        egress = self.app.egress
        policy = egress.policy
        for host in hosts:
            policy = (
                policy.allow(host, caller(plugin_id))
                if allow
                else policy.revoke(host, caller(plugin_id))
            )
        if policy != egress.policy:
            egress.set_policy(policy, "plugins.grant" if allow else "plugins.revoke")

    async def reload(self, plugin_id: str, changed: bool = False) -> None:
        """A user plugin's files changed: read it again and restart it if it runs."""
        self._reloads.pop(plugin_id, None)
        async with self._lock(plugin_id):
            await self._reload_locked(plugin_id, changed)

    async def _reload_locked(self, plugin_id: str, changed: bool) -> None:
        folder = self.catalog.user_dir / plugin_id
        running = self.processes.get(plugin_id)
        if changed and running and self._fingerprints.get(plugin_id) == fingerprint(folder):
            return  # an event that changed nothing we run (a rename into place, a touch)
        was_running = running is not None
        await self._stop(plugin_id)
        entry = await asyncio.to_thread(self.catalog.reload, plugin_id)
        logbook = self.logbook(plugin_id)
        if entry is None:
            return
        if entry.manifest is None:
            logbook.add("host", f"not reloaded: {entry.error}", "error")
            return
        if self.catalog.needs_approval(plugin_id):
            logbook.add(
                "host",
                "stopped: its manifest now asks for more than was granted; "
                f"run `hearth plugins enable {plugin_id}`",
                "error",
            )
            return
        if self.catalog.approved(plugin_id) is not None:
            logbook.add("host", "reloaded after a change to its files" if was_running else "loaded")
            with contextlib.suppress(HearthError):
                await self._launch_locked(plugin_id)

    def schedule_reload(self, plugin_id: str) -> None:
        old = self._reloads.pop(plugin_id, None)
        if old is not None:
            old.cancel()
        loop = asyncio.get_running_loop()
        self._reloads[plugin_id] = loop.call_later(
            RELOAD_DELAY, lambda: self._spawn(self.reload(plugin_id, changed=True))
        )

    # -- views -------------------------------------------------------------------------

    def describe(self, plugin_id: str) -> dict[str, Any]:
        entry = self.catalog.get(plugin_id)
        grant = self.catalog.grants.get(plugin_id)
        process = self.processes.get(plugin_id)
        manifest = entry.manifest
        enabled = bool(grant and grant.enabled)
        if entry.manifest is None:
            state = "broken"
        elif self.catalog.needs_approval(plugin_id):
            state = "needs approval"
        elif process is not None:
            state = process.state
        else:
            state = "stopped" if enabled else "disabled"
        status = process.status() if process else PluginProcess.idle_status(state)
        described = process.described if process else {"commands": [], "triggers": []}
        triggers = described["triggers"]
        return {
            "id": entry.id,
            "name": manifest.name if manifest else entry.id,
            "version": manifest.version if manifest else None,
            "description": manifest.description if manifest else "",
            "builtin": entry.builtin,
            "folder": str(entry.folder),
            "enabled": enabled,
            **status,
            "state": state,
            "problem": status.get("problem") or entry.error,
            "permissions": manifest.permissions.to_dict() if manifest else None,
            "describe_permissions": manifest.permissions.describe() if manifest else [],
            "limits": manifest.to_dict()["limits"] if manifest else None,
            "commands": described["commands"],
            "hotkeys": [
                {"keys": t["keys"], "description": t["description"]}
                for t in triggers
                if t["kind"] == "hotkey"
            ],
            "triggers": [t for t in triggers if t["kind"] != "hotkey"],
            "queued": len(self.queues.get(plugin_id, ())),
            "dropped": self.dropped.get(plugin_id, 0),
        }

    def list(self) -> list[dict[str, Any]]:
        return [self.describe(pid) for pid in sorted(self.catalog.entries)]


class _Reloader(FileSystemEventHandler):
    """Watches the user plugins dir; an edit reloads that plugin (debounced)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, host: PluginHost) -> None:
        self.loop = loop
        self.host = host

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type not in ("created", "modified", "moved", "deleted"):
            return  # opening a file (the plugin importing its module) changes nothing
        path = event.src_path.decode() if isinstance(event.src_path, bytes) else event.src_path
        try:
            relative = Path(path).relative_to(self.host.catalog.user_dir)
        except ValueError:
            return
        if not relative.parts or relative.parts[0].startswith("."):
            return
        if "__pycache__" in relative.parts:
            return
        self.loop.call_soon_threadsafe(self.host.schedule_reload, relative.parts[0])


def fingerprint(folder: Path) -> tuple[tuple[str, int, int], ...]:
    """What a plugin's folder holds: names, sizes and modification times."""
    found = []
    for path in sorted(folder.rglob("*")):
        if "__pycache__" in path.parts:
            continue
        with contextlib.suppress(OSError):
            st = path.stat()
            found.append((str(path.relative_to(folder)), st.st_size, st.st_mtime_ns))
    return tuple(found)


def _not_enabled(plugin_id: str, needs_approval: bool) -> str:
    if needs_approval:
        return (
            f"{plugin_id} asks for permissions you have not granted (its manifest changed): "
            f"run `hearth plugins enable {plugin_id}` to review them"
        )
    return f"{plugin_id} is not enabled: run `hearth plugins enable {plugin_id}`"


def _test_disabled_layers() -> list[str]:
    """Tests pretend a kernel lacks a sandbox layer (only with HEARTH_TEST_HOOKS=1)."""
    if os.environ.get("HEARTH_TEST_HOOKS") != "1":
        return []
    raw = os.environ.get("HEARTH_PLUGIN_SANDBOX_DISABLE", "")
    return [layer for layer in raw.split(",") if layer]
