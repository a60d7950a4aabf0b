"""Memory: refuse a model that cannot fit, and unload idle models when memory runs low.

A model that does not fit in free memory does not fail cleanly: the kernel swaps the
user's desktop out to make room, and everything crawls. So before a runner starts, the
model's need (weights + KV cache at the configured context + the runner itself) is
compared with what the system can give (MemAvailable, plus what idle models would free);
a model that cannot fit is refused with ``not_enough_memory``, saying what it needs.

While models are loaded, the watcher checks every CHECK_S seconds: when MemAvailable
falls below ``memory_low_mb`` (default: a tenth of RAM, at most 1 GiB), or the kernel
reports memory stalls (PSI ``some avg10`` ≥ PRESSURE_PCT), idle models are unloaded,
least recently used first, one per check. Each unload is logged and listed in
``status.memory.unloaded``. The next request loads the model again.

Linux reads /proc/meminfo and /proc/pressure/memory; elsewhere there are no figures
and no checks (yet).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daemon.errors import NotEnoughMemory

if TYPE_CHECKING:
    from daemon.engine.jobs import Slot
    from daemon.engine.scheduler import Scheduler

log = logging.getLogger(__name__)

MB = 1 << 20
CHECK_S = 2.0  # seconds between checks while a model is loaded
IDLE_S = 5.0  # a model used less than this long ago is not idle yet
PRESSURE_PCT = 20.0  # PSI memory "some" avg10: share of time tasks stalled on memory
RUNNER_BYTES = 160 * MB  # Python, the engine's libraries and compute buffers
MEMINFO = Path("/proc/meminfo")
PSI = Path("/proc/pressure/memory")


@dataclass(frozen=True)
class Memory:
    total: int  # bytes
    available: int  # bytes the kernel can give without swapping (MemAvailable)
    pressure: float | None  # PSI some avg10 (%), None where the kernel has no PSI


def read_memory(meminfo: Path = MEMINFO, psi: Path = PSI) -> Memory | None:
    """The system's memory now; None where /proc/meminfo cannot be read."""
    try:
        fields = dict(line.split(":", 1) for line in meminfo.read_text().splitlines())
        total = int(fields["MemTotal"].split()[0]) * 1024
        available = int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return None
    pressure = None
    try:
        some = psi.read_text().splitlines()[0].split()
        pressure = float(dict(kv.split("=") for kv in some[1:])["avg10"])
    except (OSError, IndexError, KeyError, ValueError):
        pass
    return Memory(total, available, pressure)


@dataclass(frozen=True)
class Need:
    weights: int
    kv_cache: int

    @property
    def total(self) -> int:
        return self.weights + self.kv_cache + RUNNER_BYTES


def model_need(path: Path, n_ctx: int) -> Need:
    """Bytes a runner needs for the model at ``path`` with a context of ``n_ctx``."""
    if path.is_dir():  # an MLX folder: weights in safetensors, shape in config.json
        weights = sum(f.stat().st_size for f in path.glob("*.safetensors"))
        try:
            config = json.loads((path / "config.json").read_text())
        except (OSError, ValueError):
            config = {}
        layers = int(config.get("num_hidden_layers", 0))
        heads = int(config.get("num_attention_heads", 1) or 1)
        kv_heads = int(config.get("num_key_value_heads", heads) or heads)
        head_dim = int(config.get("head_dim") or int(config.get("hidden_size", 0)) // heads)
        return Need(weights, n_ctx * layers * kv_heads * head_dim * 2 * 2)
    from daemon.engine.gguf import read_gguf

    meta = read_gguf(path).metadata
    arch = str(meta.get("general.architecture", ""))

    def number(key: str, default: int) -> int:
        value = meta.get(f"{arch}.{key}", default)
        if isinstance(value, list | tuple):  # per-layer values: the largest
            value = max(value, default=default)
        return int(value) if isinstance(value, int | float) else default

    layers = number("block_count", 0)
    heads = max(1, number("attention.head_count", 1))
    kv_heads = number("attention.head_count_kv", heads)
    head_dim = number("embedding_length", 0) // heads
    k_len = number("attention.key_length", head_dim)
    v_len = number("attention.value_length", head_dim)
    # llama.cpp keeps K and V in F16 (2 bytes) for every layer and position.
    return Need(path.stat().st_size, n_ctx * layers * kv_heads * (k_len + v_len) * 2)


def _mb(n: float) -> str:
    return f"{n / MB:,.0f} MB"


class MemoryGuard:
    """The policy; the scheduler asks it before loading, and it watches while loaded."""

    def __init__(self, low_mb: float | None = None, read: Any = read_memory) -> None:
        self.read = read  # a field, so a unit test can feed it figures
        self.low_mb = low_mb
        self.unloaded: deque[dict[str, Any]] = deque(maxlen=10)

    def threshold(self, memory: Memory) -> int:
        """Bytes below which memory counts as low."""
        if self.low_mb is not None:
            return int(self.low_mb * MB)
        return min(1024 * MB, memory.total // 10)

    def why_low(self, memory: Memory) -> str | None:
        if memory.available < self.threshold(memory):
            return "memory_low"
        if memory.pressure is not None and memory.pressure >= PRESSURE_PCT:
            return "memory_pressure"
        return None

    async def admit(self, scheduler: Scheduler, slot: Slot, n_ctx: int) -> None:
        """Make room for ``slot``'s model (unloading idle ones) or raise NotEnoughMemory."""
        memory = self.read()
        if memory is None:
            return
        need = await asyncio.to_thread(model_need, slot.path, n_ctx)
        while need.total > memory.available:
            idle = [s for s in scheduler.idle_slots(0.0) if s is not slot]
            if not idle:
                break
            self._note(idle[0], "making_room", memory)
            await scheduler.release(idle[0], f"to make room for {slot.key[0]}")
            memory = self.read() or memory
        if need.total > memory.available:
            raise NotEnoughMemory(
                f"{slot.key[0]} needs about {_mb(need.total)} of memory (weights "
                f"{_mb(need.weights)}, context cache {_mb(need.kv_cache)} for n_ctx {n_ctx}, "
                f"runner {_mb(RUNNER_BYTES)}) but only {_mb(memory.available)} is available. "
                "Close some programs, lower n_ctx in config.toml, or use a smaller model.",
                model=slot.key[0],
                needed_mb=round(need.total / MB),
                available_mb=round(memory.available / MB),
            )

    async def watch(self, scheduler: Scheduler) -> None:
        """Unload idle models while memory is low; forever (cancel to stop)."""
        while True:
            await asyncio.sleep(CHECK_S)
            memory = self.read()
            why = None if memory is None else self.why_low(memory)
            idle = scheduler.idle_slots(IDLE_S) if why else []
            if memory is not None and why and idle:
                self._note(idle[0], why, memory)
                await scheduler.release(idle[0], f"{why.replace('_', ' ')}: "
                                        f"{_mb(memory.available)} available")  # fmt: skip

    def _note(self, slot: Slot, why: str, memory: Memory) -> None:
        self.unloaded.append(
            {
                "model": slot.key[0],
                "engine": slot.key[1],
                "reason": why,
                "time": round(time.time(), 1),
                "available_mb": round(memory.available / MB),
                "threshold_mb": round(self.threshold(memory) / MB),
                "pressure": memory.pressure,
            }
        )

    def status(self) -> dict[str, Any] | None:
        memory = self.read()
        if memory is None:
            return None
        return {
            "total_mb": round(memory.total / MB),
            "available_mb": round(memory.available / MB),
            "low_mb": round(self.threshold(memory) / MB),
            "pressure": memory.pressure,
            "low": self.why_low(memory),
            "unloaded": list(self.unloaded),
        }
