"""The daemon's services, built once in main() and handed to every method."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import platform
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, TypeVar

from daemon.config import Config
from daemon.engine.confinement import RunnerSandbox
from daemon.engine.memory import MemoryGuard
from daemon.engine.registry import ModelInfo, Registry
from daemon.engine.scheduler import Scheduler
from daemon.errors import EngineUnavailable, HearthError, InvalidParams
from daemon.paths import Paths

T = TypeVar("T")
R = TypeVar("R")

if TYPE_CHECKING:
    from daemon.egress.service import Egress
    from daemon.pluginhost.host import PluginHost
    from daemon.vault.service import VaultService


def mlx_installed() -> bool:
    return (
        importlib.util.find_spec("mlx") is not None
        and importlib.util.find_spec("mlx_lm") is not None
    )


def auto_engine() -> str:
    """MLX on Apple Silicon when it is installed; llama.cpp everywhere else."""
    apple = sys.platform == "darwin" and platform.machine() == "arm64"
    return "mlx" if apple and mlx_installed() else "llamacpp"


@dataclass
class App:
    paths: Paths
    config: Config
    registry: Registry
    scheduler: Scheduler
    runner_log: IO[bytes]
    # Set by main() just after the socket is bound, before any method but hello and
    # status runs (those check ``ready``):
    egress: Egress = field(init=False)  # the only way out: policy, audit log, gateway, guard
    vault: VaultService = field(init=False)  # conversations, settings; require() or VaultLocked
    ready: bool = False
    memory: MemoryGuard | None = None  # memory figures and unloads, for status
    sandbox: RunnerSandbox = field(default_factory=RunnerSandbox)  # how runners are confined
    started: float = field(default_factory=time.time)
    pid: int = field(default_factory=os.getpid)
    plugins: PluginHost | None = None  # set in serve(), once the app it serves exists
    admission: asyncio.Lock = field(default_factory=asyncio.Lock)  # see in_order()

    def chosen_engine(self, model: ModelInfo, requested: str | None) -> str:
        """The engine asked for (the request's, else the config's), with auto resolved."""
        choice = requested or self.config.engine
        if choice not in ("auto", "llamacpp", "mlx"):
            raise InvalidParams(f"unknown engine {choice!r}: use auto, llamacpp or mlx")
        if choice == "auto":
            choice = "mlx" if model.format == "mlx" else auto_engine()
        return choice

    def engine_for(self, model: ModelInfo, requested: str | None) -> str:
        """The engine that will serve ``model``: never a silent switch from what was asked.

        It may read the model's header: call it off the event loop (asyncio.to_thread)."""
        choice = self.chosen_engine(model, requested)
        if choice == "llamacpp" and model.format != "gguf":
            raise EngineUnavailable(
                f"{model.name} is an MLX model folder; llama.cpp runs GGUF files. "
                "Use --engine mlx.",
                model=model.name,
                engine=choice,
            )
        if choice == "mlx" and not mlx_installed():
            raise EngineUnavailable(
                "the MLX engine is not installed (pip install mlx-lm; on Linux mlx[cpu])",
                engine="mlx",
            )
        if choice == "mlx" and model.format == "gguf":
            from daemon.engine.mlx_gguf import check_mlx_gguf

            # a clear error before any runner starts; the header is cached per file version
            check_mlx_gguf(self.registry.headers.read(Path(model.path)))
        return choice

    async def in_order(self, lookup: Callable[[], T], act: Callable[[T], Awaitable[R]]) -> R:
        """``lookup()`` in a thread, then ``act`` on its result, in the order requests came.

        Looking a model up may read files (a new one is hashed, a GGUF header parsed), so
        it runs off the event loop; yet a chat sent after an unload must find the runner
        gone, and a full queue must turn away the later requests, not the first. So each
        request holds ``admission`` (an asyncio.Lock wakes its waiters in order) until its
        action has begun: scheduler methods make their change before their first await."""
        async with self.admission:
            found = await asyncio.to_thread(lookup)
            action = asyncio.ensure_future(act(found))
            await asyncio.sleep(0)  # the action's first step, its change, runs now
        return await action

    def resolve_engine(self, name: str | None, requested: str | None) -> tuple[ModelInfo, str]:
        """The model a request names and the engine that serves it. Both may read model
        files (a new file is hashed, a GGUF's header parsed): call it off the event loop."""
        model = self.registry.resolve(name)
        return model, self.engine_for(model, requested)

    def engines_for(self, model: ModelInfo) -> list[str]:
        """The engines that can serve ``model`` on this machine."""
        usable = []
        for engine in ("llamacpp", "mlx"):
            try:
                self.engine_for(model, engine)
            except HearthError:
                continue
            usable.append(engine)
        return usable
