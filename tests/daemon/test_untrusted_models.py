"""A hostile or broken model file through the real daemon: refused with a typed error,
and the daemon, its other models and its event loop keep working, across restarts."""

from __future__ import annotations

import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from daemon.errors import EngineUnavailable, HearthError, InvalidModel
from tests.conftest import Daemon, start_daemon
from tests.daemon.engine import ggufwrite as w
from tests.daemon.engine.conftest_mlx import tiny_llama_metadata, tiny_llama_tensors, write_gguf

HELLO = {"messages": [{"role": "user", "content": "Say hi."}], "options": {"max_tokens": 4}}
TENSORS = [w.T("a.weight", (32, 2))]


def _works(daemon: Daemon) -> None:
    """models list and a chat on the default model both answer."""
    with daemon.client() as c:
        listing = c.call("models.list")
        assert listing["default"] == "smollm2-135m-instruct.q4_1"
        assert c.call("chat", HELLO)["tokens"]["completion"] > 0


def test_a_refused_import_leaves_list_and_chat_working_across_a_restart(
    home: Path, tmp_path: Path
) -> None:
    bad = w.write(tmp_path / "bad.gguf", {"general.file_type": "Q4_1"}, TENSORS)
    daemon = start_daemon(home)
    try:
        with daemon.client() as c, pytest.raises(InvalidModel) as err:
            c.call("models.import", {"path": str(bad)})
        assert "general.file_type" in err.value.message
        assert not (home / "models" / "bad.gguf").exists()
        _works(daemon)
    finally:
        daemon.stop()
    daemon = start_daemon(home)
    try:
        _works(daemon)
    finally:
        daemon.stop()


def test_a_broken_file_already_in_the_models_dir_is_skipped_and_can_be_removed(
    home: Path,
) -> None:
    models = home / "models"
    models.mkdir()
    old = {"general.architecture": "llama", "llama.context_length": "4096"}  # what once got in
    w.write(models / "old.gguf", old, TENSORS)
    daemon = start_daemon(home)
    try:
        _works(daemon)
        cli = subprocess.run(
            [sys.executable, "-m", "daemon", "models", "list"],
            env=daemon.env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert "skipped" in cli.stdout and "hearth models rm old" in cli.stdout, cli.stderr
        with daemon.client() as c:
            listing = c.call("models.list")
            assert "old" not in [m["name"] for m in listing["models"]]
            assert [s["name"] for s in listing["skipped"]] == ["old"]
            assert "llama.context_length" in listing["skipped"][0]["reason"]
            assert c.call("models.rm", {"model": "old"})["name"] == "old"
            assert c.call("models.list")["skipped"] == []
        assert not (models / "old.gguf").exists()
        log = (home / "logs" / "daemon.log").read_text()
        assert "skipping" in log and "old.gguf" in log and "llama.context_length" in log
    finally:
        daemon.stop()


def test_status_answers_while_a_slow_model_file_is_read(home: Path) -> None:
    """Reading a model's header (here ~7 million metadata strings) happens off the event
    loop: status requests sent all along the chat that caused it are answered at once.

    (The chat first waits for the vault, so one status sent early proves nothing: each
    round trip is timed while the chat is in flight; a blocked loop makes one of them
    last about as long as the whole read.)"""
    models = home / "models"
    models.mkdir()
    n = 7_000_000
    head = b"GGUF" + struct.pack("<IQQ", 3, 0, 2) + w.kv("general.architecture", "mamba")
    head += w.string("x.junk") + struct.pack("<IIQ", w.ARRAY, w.STRING, n)
    with (models / "slow.gguf").open("wb") as fh:  # sparse: n empty strings are zeros
        fh.write(head)
        fh.truncate(len(head) + 8 * n)
    daemon = start_daemon(home)
    errors: list[HearthError] = []

    def chat() -> None:
        with daemon.client() as c:
            try:
                c.call("chat", {**HELLO, "model": "slow", "options": {"engine": "mlx"}})
            except HearthError as exc:
                errors.append(exc)

    try:
        with daemon.client() as c:
            c.call("status")
            thread = threading.Thread(target=chat)
            began = time.monotonic()
            thread.start()
            round_trips = []
            while thread.is_alive():
                sent = time.monotonic()
                c.call("status")
                round_trips.append(time.monotonic() - sent)
                time.sleep(0.05)
            took = time.monotonic() - began
            thread.join()
        assert errors and isinstance(errors[0], InvalidModel)  # mamba: MLX cannot run it
        assert took > 1.0  # the read was slow enough for a blocked loop to show
        assert max(round_trips) < took / 3, (max(round_trips), took, len(round_trips))
    finally:
        daemon.stop()


def _tiny(path: Path, **overrides: Any) -> Path:
    return write_gguf(path, tiny_llama_metadata(**overrides), tiny_llama_tensors())


def _runner_log(home: Path) -> str:
    return (home / "logs" / "runner.log").read_text(errors="replace")


def test_a_llama_cpp_load_failure_says_why_and_where_the_log_is(
    fresh_daemon: Daemon, tmp_path: Path
) -> None:
    path = _tiny(tmp_path / "noeps.gguf")  # llama.cpp needs layer_norm_rms_epsilon
    with fresh_daemon.client() as c:
        c.call("models.import", {"path": str(path)})
        with pytest.raises(EngineUnavailable) as err:
            c.call("chat", {**HELLO, "model": "noeps", "options": {"engine": "llamacpp"}})
    message = err.value.message
    assert "llama.attention.layer_norm_rms_epsilon" in message
    assert str(fresh_daemon.home / "logs" / "runner.log") in message
    assert "layer_norm_rms_epsilon" in _runner_log(fresh_daemon.home)
    _works(fresh_daemon)


def test_a_llama_cpp_abort_while_loading_is_reported_and_logged(
    fresh_daemon: Daemon, tmp_path: Path
) -> None:
    path = _tiny(  # a token listed twice: llama.cpp's vocabulary loader aborts the process
        tmp_path / "twice.gguf",
        **{
            "llama.attention.layer_norm_rms_epsilon": 1e-5,
            "tokenizer.ggml.tokens": ["<s>", "a", "a", "ab"],
        },
    )
    with fresh_daemon.client() as c:
        c.call("models.import", {"path": str(path)})
        with pytest.raises(EngineUnavailable) as err:
            c.call("chat", {**HELLO, "model": "twice", "options": {"engine": "llamacpp"}})
    assert "llama.cpp aborted loading twice.gguf" in err.value.message
    assert "GGML_ASSERT" in err.value.message and "runner.log" in err.value.message
    assert "llama.cpp aborted: " in _runner_log(fresh_daemon.home)
    _works(fresh_daemon)


def test_an_mlx_load_failure_is_a_typed_invalid_model(fresh_daemon: Daemon, tmp_path: Path) -> None:
    path = _tiny(tmp_path / "twice.gguf", **{"tokenizer.ggml.tokens": ["<s>", "a", "a", "ab"]})
    with fresh_daemon.client() as c:
        c.call("models.import", {"path": str(path)})
        with pytest.raises(InvalidModel) as err:
            c.call("chat", {**HELLO, "model": "twice", "options": {"engine": "mlx"}})
    assert "lists the token 'a' twice" in err.value.message
    assert "runner.log" in err.value.message
    assert "could not load" in _runner_log(fresh_daemon.home)
