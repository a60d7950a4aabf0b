"""CPU sharing: the runner computes with the CPUs other programs leave free, and
background requests run at nice 19."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from daemon.engine.cpu import BACKGROUND_NICE, CpuShare, read_busy, threads_for, usable_cpus
from daemon.errors import InvalidParams
from tests.conftest import Daemon, make_home, start_daemon


def test_threads_are_the_cpus_others_leave_free_and_never_fewer_than_one() -> None:
    assert threads_for(2, 0.0) == 2
    assert threads_for(2, 0.3) == 2  # a little background noise keeps both
    assert threads_for(2, 0.67) == 1  # one busy program sharing with our two threads
    assert threads_for(2, 1.0) == 1
    assert threads_for(2, 2.0) == 1  # at least one, whatever the load
    assert threads_for(8, 3.0) == 5


def test_a_new_load_counts_at_once_and_a_finished_one_after_two_samples() -> None:
    wall = {"busy": 0.0, "own": 0.0}

    def advance(others: float, own: float) -> int:
        # a quarter second passes: others use ``others`` CPUs, this process ``own``
        wall["busy"] += (others + own) * 0.25
        wall["own"] += own * 0.25
        time.sleep(0.25)
        return share.update()

    share = CpuShare(cpus=2, busy=lambda: wall["busy"], own=lambda: wall["own"])
    assert advance(0.0, 2.0) == 2  # our own work does not count against us
    assert advance(1.0, 1.0) == 1  # one busy program: seen in one sample
    assert advance(0.0, 1.0) == 1  # still remembered for one more
    assert advance(0.0, 1.0) == 2


def test_this_machine_reports_busy_time_for_our_cpus() -> None:
    first = read_busy()
    assert first is not None
    sum(i * i for i in range(300_000))
    second = read_busy()
    assert second is not None and second >= first


@contextmanager
def busy(n: int) -> Iterator[None]:
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        yield
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def test_busy_programs_on_every_cpu_bring_the_choice_down_to_one_thread() -> None:
    share = CpuShare()
    with busy(usable_cpus()):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and share.update() != 1:
            time.sleep(0.25)
    assert share.threads() == 1
    assert share.others >= 0.5


def chat(client: Any, **options: Any) -> dict[str, Any]:
    options = {"temperature": 0, "max_tokens": 48, **options}
    params = {"messages": [{"role": "user", "content": "Tell me about lighthouses."}],
              "store": False, "options": options}  # fmt: skip
    result: dict[str, Any] = client.call("chat", params)
    return result


def runner_nices(client: Any) -> list[int]:
    """The nice value of each of the runner's threads, the main thread first."""
    pid = client.call("status")["runners"][0]["pid"]
    tids = sorted(int(tid) for tid in os.listdir(f"/proc/{pid}/task"))
    return [os.getpriority(os.PRIO_PROCESS, tid) for tid in tids]


def test_the_runner_computes_with_one_thread_beside_busy_programs_on_every_cpu(
    daemon: Daemon,
) -> None:
    with daemon.client() as client:
        chat(client, max_tokens=2)  # loaded
        with busy(usable_cpus()):
            time.sleep(1.0)  # seen by the runner's sampler (every 0.25 s)
            result = chat(client)
        assert result["timings"]["threads"] == 1
        assert result["tokens"]["completion"] > 1


def test_background_requests_run_on_a_nice_19_thread_and_interactive_ones_do_not(
    daemon: Daemon,
) -> None:
    with daemon.client() as client:
        chat(client, max_tokens=2)
        assert BACKGROUND_NICE not in runner_nices(client)
        result = chat(client, priority="background", max_tokens=8)
        assert result["text"]
        nices = runner_nices(client)
        assert BACKGROUND_NICE in nices  # the background thread, kept for the next one
        assert nices[0] == 0  # the main thread, which serves interactive requests
        assert chat(client, max_tokens=8)["text"] == result["text"]  # same answer


def test_background_nice_in_config_sets_how_far_background_requests_step_aside() -> None:
    home = make_home("background_nice = 7\n")
    daemon = start_daemon(home)
    try:
        with daemon.client() as client:
            chat(client, priority="background", max_tokens=2)
            nices = runner_nices(client)
        assert 7 in nices and BACKGROUND_NICE not in nices and nices[0] == 0
    finally:
        daemon.stop()
        shutil.rmtree(home, ignore_errors=True)


def test_an_unknown_priority_is_refused_naming_the_two_there_are(daemon: Daemon) -> None:
    with daemon.client() as client, pytest.raises(InvalidParams) as refused:
        chat(client, priority="urgent")
    assert refused.value.data["field"] == "priority"
    assert "interactive" in refused.value.message and "background" in refused.value.message
