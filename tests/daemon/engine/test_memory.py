"""Memory pressure: idle models unload when memory runs low; a model that cannot fit is
refused. The daemon tests use the real model and a threshold set for the test."""

from __future__ import annotations

import asyncio
import shutil
import time
from typing import Any

import pytest

from daemon.engine.gguf import read_gguf
from daemon.engine.memory import MB, RUNNER_BYTES, Memory, MemoryGuard, model_need, read_memory
from daemon.engine.registry import default_model_path
from daemon.errors import NotEnoughMemory
from tests.conftest import make_home, start_daemon

CHAT = {"messages": [{"role": "user", "content": "Hi"}], "store": False,
        "options": {"temperature": 0, "max_tokens": 2}}  # fmt: skip


def test_the_need_of_a_gguf_model_is_its_file_plus_an_f16_kv_cache_for_every_layer() -> None:
    path = default_model_path()
    assert path is not None
    meta = read_gguf(path).metadata
    layers, heads = meta["llama.block_count"], meta["llama.attention.head_count"]
    kv_heads, width = meta["llama.attention.head_count_kv"], meta["llama.embedding_length"]
    need = model_need(path, 4096)
    assert need.weights == path.stat().st_size
    assert need.kv_cache == 4096 * layers * kv_heads * 2 * (width // heads) * 2
    assert need.total == need.weights + need.kv_cache + RUNNER_BYTES
    assert model_need(path, 8192).kv_cache == 2 * need.kv_cache


def test_memory_counts_as_low_below_the_threshold_or_under_pressure() -> None:
    guard = MemoryGuard(low_mb=500)
    assert guard.why_low(Memory(8000 * MB, 400 * MB, 0.0)) == "memory_low"
    assert guard.why_low(Memory(8000 * MB, 600 * MB, 0.0)) is None
    assert guard.why_low(Memory(8000 * MB, 600 * MB, 35.0)) == "memory_pressure"
    auto = MemoryGuard()  # a tenth of RAM, at most 1 GiB
    assert auto.threshold(Memory(4000 * MB, 0, None)) == 400 * MB
    assert auto.threshold(Memory(64000 * MB, 0, None)) == 1024 * MB


def test_this_machine_reports_its_memory() -> None:
    memory = read_memory()
    assert memory is not None and 0 < memory.available <= memory.total


def status_when(client: Any, check: Any, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status: dict[str, Any] = client.call("status")
        if check(status):
            return status
        time.sleep(0.25)
    raise AssertionError(f"status never matched: {status}")


def test_an_idle_model_is_unloaded_when_memory_is_low_and_status_and_the_log_say_why() -> None:
    # A threshold above any machine's RAM: memory is always "low" for this daemon.
    home = make_home("keep_alive = -1\nmemory_low_mb = 100000000\n")
    daemon = start_daemon(home)
    try:
        with daemon.client() as client:
            model = client.call("chat", CHAT)["model"]  # fits: it loads and answers
            status = status_when(client, lambda s: not s["models_loaded"])
            event = status["memory"]["unloaded"][-1]
            assert event["model"] == model and event["reason"] == "memory_low"
            assert event["available_mb"] < event["threshold_mb"] == 100000000
            assert status["memory"]["low"] == "memory_low"
            log = (daemon.paths.logs / "daemon.log").read_text()
            assert f"unloading {model} memory low" in log
            assert client.call("chat", CHAT)["text"]  # the next request loads it again
    finally:
        daemon.stop()
        shutil.rmtree(home, ignore_errors=True)


def test_a_model_that_cannot_fit_is_refused_with_what_it_needs_and_nothing_starts() -> None:
    # A context cache of ~2 TB: no machine running this suite has that free.
    home = make_home("n_ctx = 100000000\n")
    daemon = start_daemon(home)
    try:
        with daemon.client() as client:
            for method, params in (("chat", CHAT), ("models.load", {"model": "default"})):
                with pytest.raises(NotEnoughMemory) as refused:
                    client.call(method, params)
                data = refused.value.data
                assert data["needed_mb"] > data["available_mb"] > 0
                assert "n_ctx" in refused.value.message and "available" in refused.value.message
            status = client.call("status")  # the daemon runs on, and started no runner
            assert status["runners"] == []
    finally:
        daemon.stop()
        shutil.rmtree(home, ignore_errors=True)


def test_admitting_a_model_unloads_idle_ones_first_when_that_makes_it_fit() -> None:
    """The policy alone, with memory figures fed to it: room is made LRU-first."""

    class Slots:
        def __init__(self) -> None:
            self.released: list[str] = []
            self.free = 100 * MB

        def idle_slots(self, idle_for: float) -> list[Any]:
            return [s for s in (old, other) if s.key[0] not in self.released]

        async def release(self, slot: Any, why: str) -> None:
            self.released.append(slot.key[0])
            self.free += 4000 * MB

    class Slot:
        def __init__(self, name: str) -> None:
            self.key = (name, "llamacpp")
            self.path = default_model_path()

    old, other, new = Slot("old"), Slot("other"), Slot("new")
    slots = Slots()
    guard = MemoryGuard(read=lambda: Memory(16000 * MB, slots.free, 0.0))
    asyncio.run(guard.admit(slots, new, 4096))  # type: ignore[arg-type]
    assert slots.released == ["old"]  # one was enough
    assert guard.unloaded[-1]["reason"] == "making_room"
