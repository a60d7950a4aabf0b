"""``Plugin``: what a plugin module declares — its commands and its triggers.

Decorators only record functions; nothing runs at import time. The plugin host reads
the record (:meth:`Plugin.describe`) once the module is imported inside the sandbox,
and calls the functions when a command is run or a trigger fires.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])
_INTERVAL = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d)$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def parse_interval(text: str) -> float:
    """``"30s"``, ``"5m"``, ``"1h"``, ``"1d"`` → seconds (at least 1)."""
    match = _INTERVAL.match(text.strip().lower())
    if not match or float(match.group(1)) * _UNITS[match.group(2)] < 1:
        raise ValueError(f"interval {text!r}: use a number and s, m, h or d, e.g. '30s' or '1h'")
    return float(match.group(1)) * _UNITS[match.group(2)]


def _doc(fn: Callable[..., Any]) -> str:
    return (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""


@dataclass
class Plugin:
    """Collects a plugin's handlers. A module creates one: ``plugin = Plugin()``."""

    commands: dict[str, Callable[..., Any]] = field(default_factory=dict)
    triggers: dict[str, tuple[dict[str, Any], Callable[..., Any]]] = field(default_factory=dict)

    def command(self, name: str, description: str | None = None) -> Callable[[F], F]:
        """``hearth plugins run ID NAME ARG...`` (and the tray's Plugins menu) call it as
        ``fn(ctx, *args)``; it returns a string or any JSON-able value."""
        if not _NAME.match(name):
            raise ValueError(f"command name {name!r}: use lower-case letters, digits, - and _")

        def add(fn: F) -> F:
            if name in self.commands:
                raise ValueError(f"command {name!r} is declared twice")
            self.commands[name] = fn
            fn.__hearth_description__ = description or _doc(fn)  # type: ignore[attr-defined]
            return fn

        return add

    def on_file(
        self, path: str, patterns: Sequence[str] = ("*",), debounce: float = 1.0
    ) -> Callable[[F], F]:
        """``fn(ctx, event)`` once a matching file under ``path`` has been quiet for
        ``debounce`` seconds (a bulk copy gives one call per file, not a storm)."""
        if not 0.05 <= debounce <= 3600:
            raise ValueError("debounce must be from 0.05 to 3600 seconds")
        spec = {"kind": "file", "path": path, "patterns": list(patterns), "debounce": debounce}
        return self._trigger(spec)

    def every(self, interval: str) -> Callable[[F], F]:
        """``fn(ctx)`` every ``interval`` (``"30s"``, ``"15m"``, ``"1h"``, ``"1d"``)."""
        return self._trigger({"kind": "every", "seconds": parse_interval(interval)})

    def cron(self, expression: str) -> Callable[[F], F]:
        """``fn(ctx)`` on a cron schedule in local time (``"0 9 * * 1-5"``: 9:00 on weekdays)."""
        if len(expression.split()) != 5:
            raise ValueError(f"cron {expression!r}: needs 5 fields (minute hour day month weekday)")
        return self._trigger({"kind": "cron", "expression": expression})

    def on_hotkey(self, keys: str, description: str | None = None) -> Callable[[F], F]:
        """``fn(ctx)`` when the user presses ``keys`` (``"ctrl+alt+s"``; the tray listens)."""
        return self._trigger({"kind": "hotkey", "keys": keys.lower(), "description": description})

    def _trigger(self, spec: dict[str, Any]) -> Callable[[F], F]:
        def add(fn: F) -> F:
            name = fn.__name__
            if name in self.triggers:
                raise ValueError(f"{name} is already a trigger: give each trigger its own function")
            if spec["kind"] == "hotkey" and spec["description"] is None:
                spec["description"] = _doc(fn) or name
            self.triggers[name] = (spec, fn)
            return fn

        return add

    def describe(self) -> dict[str, Any]:
        """What the host needs to list and wire this plugin."""
        return {
            "commands": [
                {"name": name, "description": getattr(fn, "__hearth_description__", "")}
                for name, fn in self.commands.items()
            ],
            "triggers": [{"handler": name, **spec} for name, (spec, _) in self.triggers.items()],
        }
