"""The daemon's side of runner confinement: what a runner starts with, whether it may run
unconfined, what each one got, and what it tried.

- A runner gets a minimal environment (:func:`runner_env`): no D-Bus address, no
  runtime dir, no proxies, no HEARTH_* settings — nothing that points anywhere.
- It confines itself before loading a model (engine/sandbox.py) and refuses to go on
  unconfined unless the user opted out (``allow_unconfined_runners = true``).
- Its socket guard's refusals come back over a pipe of their own (``--report-fd``) and
  are written to the daemon's audit log, at most :data:`MAX_REPORTS` per runner: a
  compromised runner must not be able to fill the disk through the log.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from daemon.errors import EngineUnavailable
from daemon.peers import start_time

log = logging.getLogger(__name__)

Sink = Callable[[Mapping[str, object]], object]

# What a runner may see of the daemon's environment: enough to find Python, the Hearth
# code and the user's locale, and the engines' own tuning knobs. Nothing else.
_KEEP = frozenset(
    {"PATH", "PYTHONPATH", "PYTHONHOME", "PYTHONSAFEPATH", "HOME", "TMPDIR", "TZ", "LANG",
     "LANGUAGE", "LC_ALL", "LC_CTYPE", "LC_MESSAGES", "LC_NUMERIC", "SYSTEMROOT"}
)  # fmt: skip
_KEEP_PREFIXES = ("GGML_", "LLAMA_", "MLX_", "OMP_", "GOMP_", "OPENBLAS_", "MKL_", "VECLIB_")
MAX_REPORTS = 100  # refusals recorded per runner; the rest are counted
_MAX_LINE = 16 * 1024
_FIELDS = {"caller": str, "method": str, "host": str, "port": int, "error": str}


def runner_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment a runner is started with."""
    env = {k: v for k, v in environ.items() if k in _KEEP or k.startswith(_KEEP_PREFIXES)}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _clean(report: object, engine: str) -> dict[str, Any] | None:
    """An audit entry from a runner's report, keeping only known fields of known types:
    the runner may be compromised, so nothing it sends is taken at its word."""
    if not isinstance(report, dict) or not isinstance(report.get("hearth_egress_blocked"), dict):
        return None
    raw: dict[str, Any] = report["hearth_egress_blocked"]
    entry: dict[str, Any] = {"phase": "blocked", "decision": "block"}
    for name, kind in _FIELDS.items():
        value = raw.get(name)
        if isinstance(value, kind) and not isinstance(value, bool):
            entry[name] = value[:200] if isinstance(value, str) else value
    entry["caller"] = f"runner:{engine}:{entry.get('caller', 'unknown')}"[:200]
    stack = raw.get("stack")
    if isinstance(stack, list):
        entry["stack"] = [str(frame)[:200] for frame in stack[:8]]
    return entry


@dataclass
class RunnerSandbox:
    """How runners are confined, and what they got. ``sink`` records a runner's refusals
    (the daemon's audit log); without one they are only counted."""

    allow_unconfined: bool = False
    sink: Sink | None = None
    blocked: int = 0  # refusals reported by runners
    unrecorded: int = 0  # of those, not written to the audit log
    refused: int = 0  # runners that would not start unconfined
    last_refusal: str | None = None
    _isolation: dict[int, dict[str, Any]] = field(default_factory=dict)
    _started: dict[int, int | None] = field(default_factory=dict)  # pid: its start time
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def args(self) -> list[str]:
        return ["--allow-unconfined"] if self.allow_unconfined else []

    def reports(self, engine: str) -> int:
        """A pipe for one runner's reports: returns the write end to hand to it (close
        it once the runner is started); what comes out is forwarded until it closes."""
        read, write = os.pipe()
        threading.Thread(
            target=self._forward, args=(read, engine), name="runner-reports", daemon=True
        ).start()
        return write

    def _forward(self, fd: int, engine: str) -> None:
        recorded = dropped = 0
        with os.fdopen(fd, "rb") as pipe:
            while line := pipe.readline(_MAX_LINE):
                try:
                    entry = _clean(json.loads(line), engine)
                except ValueError:
                    entry = None
                if entry is None:
                    continue
                with self._lock:
                    self.blocked += 1
                if recorded >= MAX_REPORTS:
                    dropped += 1
                    continue
                recorded += self._record(entry)
        if dropped:
            self._record({"phase": "blocked", "caller": f"runner:{engine}",
                          "error": f"{dropped} more refusals not recorded"})  # fmt: skip

    def _record(self, entry: Mapping[str, object]) -> int:
        try:
            if self.sink is None:
                raise RuntimeError("no audit log")
            self.sink(entry)
            return 1
        except Exception:  # the log is closed or unusable: the refusal still happened
            with self._lock:
                self.unrecorded += 1
            return 0

    def spawned(self, pid: int) -> None:
        """Note a runner process as soon as it exists: from then on it is no peer."""
        with self._lock:
            self._started = {p: t for p, t in self._started.items() if start_time(p) == t}
            self._started[pid] = start_time(pid)

    def started(self, pid: int, ready: Mapping[str, Any]) -> None:
        """Note what a runner that said ``ready`` got."""
        isolation = ready.get("isolation")
        with self._lock:
            self._isolation[pid] = dict(isolation) if isinstance(isolation, dict) else {}
        if not self._isolation[pid].get("confined"):
            log.warning("runner %d runs WITHOUT network confinement (the user allowed it)", pid)

    def refusal(self, event: Mapping[str, Any], engine: str) -> EngineUnavailable:
        """The error for a runner that would not start unconfined."""
        message = str(event.get("message", "the runner could not be confined"))[:500]
        with self._lock:
            self.refused += 1
            self.last_refusal = message
        log.error("runner refused to start: %s", message)
        return EngineUnavailable(message, engine=engine, reason="unconfined")

    def pids(self) -> frozenset[int]:
        """The runners still running (a pid is checked with its start time: a pid the
        kernel gave to another process since is not a runner)."""
        with self._lock:
            started = dict(self._started)
        return frozenset(p for p, t in started.items() if t is not None and start_time(p) == t)

    def isolation(self, pid: int) -> dict[str, Any] | None:
        with self._lock:
            return self._isolation.get(pid)

    def status(self, live: list[int]) -> dict[str, Any]:
        """The confinement of the runners with pids ``live`` (others are forgotten)."""
        with self._lock:
            self._isolation = {p: i for p, i in self._isolation.items() if p in live}
            return {
                "required": not self.allow_unconfined,
                "runners": [{"pid": p, **i} for p, i in self._isolation.items()],
                "refused": self.refused,
                "last_refusal": self.last_refusal,
                "blocked": self.blocked,
                "blocked_unrecorded": self.unrecorded,
            }
