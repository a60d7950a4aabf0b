"""What makes a plugin run on its own: file changes, intervals and cron schedules.

File watches use watchdog (inotify, FSEvents, ReadDirectoryChangesW) in the daemon, not
in the plugin: the sandbox has no business watching anything. Events are debounced per
file — a file fires once it has been quiet for the trigger's ``debounce`` seconds — so
an editor's save storm or a bulk copy of a thousand files gives one call per file, and
the host queues those calls (bounded, duplicates merged) to run one at a time at
background priority. Hotkeys come from the tray (``plugins.hotkey``); commands from the
CLI and the tray's Plugins menu (``plugins.run``).
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, ObservedWatch

from daemon.pluginhost.cron import Cron
from daemon.pluginhost.manifest import expand

log = logging.getLogger(__name__)

Fire = Callable[[str, dict[str, Any] | None], None]  # (trigger handler, file event or None)


class Debounced(FileSystemEventHandler):
    """Watchdog's thread hands events to the event loop, which fires each file once
    it has been quiet for ``delay`` seconds."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        handler: str,
        patterns: list[str],
        delay: float,
        fire: Fire,
    ) -> None:
        self.loop = loop
        self.handler = handler
        self.patterns = patterns
        self.delay = delay
        self.fire = fire
        self.timers: dict[str, asyncio.TimerHandle] = {}
        self.kinds: dict[str, str] = {}
        self.events = 0  # raw events seen, for the tests and the logs

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory or event.event_type not in ("created", "modified", "moved"):
            return
        path = event.dest_path if event.event_type == "moved" else event.src_path
        path = path.decode() if isinstance(path, bytes) else path
        if not any(fnmatch.fnmatch(Path(path).name, pat) for pat in self.patterns):
            return
        self.loop.call_soon_threadsafe(self._feed, event.event_type, path)

    def _feed(self, kind: str, path: str) -> None:
        self.events += 1
        old = self.timers.pop(path, None)
        if old is not None:
            old.cancel()
        # "created" then "modified" is still a new file to the plugin.
        self.kinds[path] = self.kinds.get(path, kind) if kind == "modified" else kind
        self.timers[path] = self.loop.call_later(self.delay, self._fire, path)

    def _fire(self, path: str) -> None:
        self.timers.pop(path, None)
        kind = self.kinds.pop(path, "modified")
        self.fire(self.handler, {"kind": kind, "path": path})

    def cancel(self) -> None:
        for timer in self.timers.values():
            timer.cancel()
        self.timers.clear()


class Triggers:
    """The file watches and schedules of one running plugin life."""

    def __init__(self, home: Path, fire: Fire) -> None:
        self.observer: BaseObserver | None = None  # its own: stopping it touches no other
        self.home = home
        self.fire = fire
        self.watches: list[tuple[ObservedWatch, Debounced]] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.problems: list[str] = []

    def start(self, triggers: list[dict[str, Any]]) -> None:
        loop = asyncio.get_running_loop()
        for trigger in triggers:
            kind, handler = trigger["kind"], trigger["handler"]
            try:
                if kind == "file":
                    self._watch(loop, handler, trigger)
                elif kind == "every":
                    self.tasks.append(loop.create_task(self._every(handler, trigger["seconds"])))
                elif kind == "cron":
                    cron = Cron.parse(trigger["expression"])
                    self.tasks.append(loop.create_task(self._cron(handler, cron)))
            except (OSError, ValueError) as exc:
                self.problems.append(f"{handler}: {exc}")
                log.warning("a trigger could not be set up: %s", type(exc).__name__)

    def _watch(self, loop: asyncio.AbstractEventLoop, handler: str, spec: dict[str, Any]) -> None:
        path = expand(spec["path"], self.home)
        if not path.is_dir():
            raise OSError(f"{path} is not a folder (create it, then reload the plugin)")
        events = Debounced(loop, handler, spec["patterns"], spec["debounce"], self.fire)
        if self.observer is None:
            self.observer = new_observer()
        watch = self.observer.schedule(events, str(path), recursive=True)
        self.watches.append((watch, events))

    async def _every(self, handler: str, seconds: float) -> None:
        while True:
            await asyncio.sleep(seconds)
            self.fire(handler, None)

    async def _cron(self, handler: str, cron: Cron) -> None:
        while True:
            now = datetime.now()
            due = cron.next_after(now)
            # Sleep in steps, so a clock change or a suspend is noticed within a minute.
            while (left := (due - datetime.now()).total_seconds()) > 0:
                await asyncio.sleep(min(left, 60.0))
            self.fire(handler, None)

    def stop(self) -> None:
        for _, events in self.watches:
            events.cancel()
        self.watches.clear()
        if self.observer is not None:
            self.observer.stop()  # its thread ends on its own; nothing waits for it
            self.observer = None
        for task in self.tasks:
            task.cancel()
        self.tasks.clear()


def new_observer() -> BaseObserver:
    observer = Observer()
    observer.daemon = True
    observer.start()
    return observer
