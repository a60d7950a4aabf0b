"""The daemon's services, built once in main() and handed to every method."""

from __future__ import annotations

import importlib.util
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from typing import IO

from daemon.config import Config
from daemon.engine.registry import ModelInfo, Registry
from daemon.engine.scheduler import Scheduler
from daemon.errors import EngineUnavailable, InvalidParams
from daemon.paths import Paths


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
    started: float = field(default_factory=time.time)
    pid: int = field(default_factory=os.getpid)

    def engine_for(self, model: ModelInfo, requested: str | None) -> str:
        """The engine that will serve ``model``: never a silent switch from what was asked."""
        choice = requested or self.config.engine
        if choice not in ("auto", "llamacpp", "mlx"):
            raise InvalidParams(f"unknown engine {choice!r}: use auto, llamacpp or mlx")
        if choice == "auto":
            choice = "mlx" if model.format == "mlx" else auto_engine()
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
        return choice
