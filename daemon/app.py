"""The daemon's services, built once in main() and handed to every method."""

from __future__ import annotations

import importlib.util
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

from daemon.config import Config
from daemon.engine.confinement import RunnerSandbox
from daemon.engine.gguf import read_gguf
from daemon.engine.memory import MemoryGuard
from daemon.engine.registry import ModelInfo, Registry
from daemon.engine.scheduler import Scheduler
from daemon.errors import EngineUnavailable, HearthError, InvalidParams
from daemon.paths import Paths

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

    def chosen_engine(self, model: ModelInfo, requested: str | None) -> str:
        """The engine asked for (the request's, else the config's), with auto resolved."""
        choice = requested or self.config.engine
        if choice not in ("auto", "llamacpp", "mlx"):
            raise InvalidParams(f"unknown engine {choice!r}: use auto, llamacpp or mlx")
        if choice == "auto":
            choice = "mlx" if model.format == "mlx" else auto_engine()
        return choice

    def engine_for(self, model: ModelInfo, requested: str | None) -> str:
        """The engine that will serve ``model``: never a silent switch from what was asked."""
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

            check_mlx_gguf(read_gguf(Path(model.path)))  # a clear error before any runner starts
        return choice

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
