"""MLX through the daemon: the converted folder, engine choice and clear refusals."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from daemon.errors import EngineUnavailable, InvalidModel
from tests.conftest import Daemon

PROMPT = [{"role": "user", "content": "What is the capital of France?"}]


def hearth(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HEARTH_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "daemon", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_a_converted_mlx_folder_answers_like_the_gguf(fresh_daemon: Daemon) -> None:
    out = hearth(fresh_daemon.home, "models", "convert", "default", "--to", "mlx")
    assert out.returncode == 0, out.stderr
    name = "smollm2-135m-instruct.q4_1-mlx"
    with fresh_daemon.client() as c:
        listed = {m["name"]: m for m in c.call("models.list")["models"]}
        assert listed[name]["format"] == "mlx" and listed[name]["engines"] == ["mlx"]
        opts = {"temperature": 0, "max_tokens": 12}
        folder = c.call("chat", {"model": name, "messages": PROMPT, "options": opts})
        gguf = c.call("chat", {"messages": PROMPT, "options": {**opts, "engine": "mlx"}})
        assert folder["engine"] == "mlx" and folder["model"] == name
        assert folder["text"] and folder["text"] == gguf["text"]
        with pytest.raises(EngineUnavailable) as err:
            c.call("chat", {"model": name, "messages": PROMPT, "options": {"engine": "llamacpp"}})
        assert "GGUF" in err.value.message
        engines = {r["engine"] for r in c.call("status")["runners"]}
        assert engines == {"mlx"}


def test_a_gguf_mlx_cannot_run_is_refused_before_any_runner_starts(
    fresh_daemon: Daemon, tmp_path: Path
) -> None:
    from tests.daemon.engine.conftest_mlx import tiny_llama_metadata, tiny_llama_tensors, write_gguf

    meta = {**tiny_llama_metadata(), "general.architecture": "mamba"}
    meta = {k.replace("llama.", "mamba."): v for k, v in meta.items()}
    path = write_gguf(tmp_path / "odd.gguf", meta, tiny_llama_tensors())
    with fresh_daemon.client() as c:
        c.call("models.import", {"path": str(path)})
        with pytest.raises(InvalidModel) as err:
            c.call("chat", {"model": "odd", "messages": PROMPT, "options": {"engine": "mlx"}})
        assert "mamba" in err.value.message and "llama" in err.value.message
        assert c.call("status")["runners"] == []
