"""A plugin's log: what it wrote with ``ctx.log``, its stderr, and what the host did to it.

Plugin output may quote the user's text, so the log is kept in the vault (encrypted),
never in a plain file: the newest entries in one record per plugin. The daemon's own
log gets only the host's events (started, crashed, killed), never the plugin's words.
While the vault is locked the entries stay in memory and are written once it opens.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from typing import Any

from daemon.errors import HearthError
from daemon.vault.service import VaultService

LOG_KEY = "\0log"  # storage keys may not hold NUL, so no plugin key can collide
MAX_ENTRIES = 500
MAX_MESSAGE = 2000
FLUSH_DELAY = 0.2


class PluginLog:
    def __init__(self, plugin_id: str, vault: VaultService) -> None:
        self.plugin_id = plugin_id
        self.vault = vault
        self.entries: deque[dict[str, Any]] = deque(maxlen=MAX_ENTRIES)
        self._flush: asyncio.Task[None] | None = None
        self.persisted = True
        self._discarded = False

    async def load(self) -> None:
        with contextlib.suppress(HearthError):
            stored = await asyncio.to_thread(self._read)
            if isinstance(stored, list):
                self.entries.extendleft(reversed(stored[-MAX_ENTRIES:]))

    def _read(self) -> Any:
        return self.vault.require().plugin_get(self.plugin_id, LOG_KEY, [])

    def add(self, source: str, message: str, level: str = "info") -> None:
        """Record one entry: ``source`` is host, plugin or stderr."""
        if len(message) > MAX_MESSAGE:
            message = message[:MAX_MESSAGE] + "…"
        self.entries.append(
            {"time": round(time.time(), 3), "source": source, "level": level, "message": message}
        )
        if self._flush is None or self._flush.done():
            with contextlib.suppress(RuntimeError):  # no running loop (shutdown): memory only
                self._flush = asyncio.get_running_loop().create_task(self._write_soon())

    async def _write_soon(self) -> None:
        await asyncio.sleep(FLUSH_DELAY)
        await self.flush()

    async def flush(self) -> None:
        if self._discarded:
            return
        entries = list(self.entries)
        try:
            await asyncio.to_thread(self._write, entries)
            self.persisted = True
        except HearthError:
            self.persisted = False  # locked or full: kept in memory, written next time

    def _write(self, entries: list[dict[str, Any]]) -> None:
        self.vault.require().plugin_put(self.plugin_id, LOG_KEY, entries)

    def discard(self) -> None:
        """The plugin is removed: write nothing more (its record is being deleted)."""
        self._discarded = True
        if self._flush is not None:
            self._flush.cancel()

    def tail(self, limit: int) -> list[dict[str, Any]]:
        return list(self.entries)[-limit:]
