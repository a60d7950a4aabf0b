"""Runner lifecycle races in the scheduler, on the real daemon and model (issue 20, 1-3, 8).

The windows: a runner starting (cold daemon, after keep-alive expiry or a crash), a runner
being stopped, a runner that died idle, a keep-alive timer outliving its runner. Runner
processes are counted in /proc, not only through `status`.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Iterator

import pytest

from daemon.client import Client
from tests.conftest import Daemon, make_home, start_daemon
from tests.daemon.support import default_model, log_text, runner_pids, until, zombies

PROMPT = [{"role": "user", "content": "Write a very long story about a dragon."}]
LONG = {"messages": PROMPT, "store": False, "options": {"temperature": 0, "max_tokens": 400}}
SHORT = {"messages": PROMPT, "store": False, "options": {"max_tokens": 2}}


@pytest.fixture
def cold() -> Iterator[Daemon]:
    """A daemon with no runner yet; keep-alive pinned, so only the test unloads."""
    home = make_home("keep_alive = -1\n")
    daemon = start_daemon(home)
    yield daemon
    daemon.stop()
    shutil.rmtree(home, ignore_errors=True)


def status_pids(c: Client) -> set[int]:
    return {r["pid"] for r in c.call("status")["runners"]}


def starting(daemon: Daemon) -> set[int]:
    """Wait for a runner process to exist: the scheduler is starting it."""
    return until(lambda: runner_pids(daemon), "a runner process to start")


def no_runner_left(daemon: Daemon) -> bool:
    return not runner_pids(daemon) and not zombies(daemon)


# 1. A cancel, an unload or a disconnect while the runner starts.


def test_a_cancel_sent_while_the_runner_starts_ends_the_request_before_it_runs(
    cold: Daemon,
) -> None:
    with cold.client() as c:
        rid = c.send("chat", LONG)
        starting(cold)
        assert c.call("cancel", {"id": rid}) == {"cancelled": True}
        result = c.wait(rid)
        assert result["finish_reason"] == "cancelled"
        assert result["tokens"]["completion"] < 10  # 0 when it never ran; it ran 400 before
        until(lambda: status_pids(c), "the runner to be ready")
        assert runner_pids(cold) == status_pids(c)


def test_unload_while_the_runner_starts_kills_it_and_cancels_its_request(cold: Daemon) -> None:
    model = default_model(cold)
    with cold.client() as a, cold.client() as b:
        rid = a.send("chat", LONG)
        starting(cold)
        assert b.call("models.unload", {"model": model})["unloaded"] == 1
        result = a.wait(rid)
        assert result["finish_reason"] == "cancelled"
        assert result["tokens"]["completion"] < 10
        until(lambda: no_runner_left(cold), "the starting runner to be killed and reaped", 30)
        assert b.call("status")["runners"] == []


def test_a_client_that_leaves_while_the_runner_starts_never_has_its_request_run(
    cold: Daemon,
) -> None:
    c = cold.client()
    c.send("chat", LONG)
    starting(cold)
    c.close()
    with cold.client() as other:
        runners = until(lambda: other.call("status")["runners"], "the runner to be ready")
        assert not runners[0]["busy"], "the abandoned request runs"
        until(lambda: "request cancelled after 0 tokens" in log_text(cold), "the cancel")
        assert not any(r["busy"] for r in other.call("status")["runners"])
        assert runner_pids(cold) == status_pids(other)


# 2. One runner start per model, however many ask at once.


def test_concurrent_loads_start_one_runner(cold: Daemon) -> None:
    model = default_model(cold)
    clients = [cold.client(f"loader{i}") for i in range(3)]
    try:
        ids = [c.send("models.load", {"model": model}) for c in clients]
        pids = {c.wait(rid)["pid"] for c, rid in zip(clients, ids, strict=True)}
        assert len(pids) == 1
        assert runner_pids(cold) == pids == status_pids(clients[0])
        assert clients[0].call("models.unload", {"model": model})["unloaded"] == 1
        until(lambda: no_runner_left(cold), "the runner to stop", 30)
    finally:
        for c in clients:
            c.close()


def test_a_chat_and_a_warm_up_load_on_a_cold_daemon_share_one_runner(cold: Daemon) -> None:
    model = default_model(cold)
    with cold.client() as a, cold.client() as b:
        chat = a.send("chat", SHORT)
        load = b.send("models.load", {"model": model})
        pid = b.wait(load)["pid"]
        assert a.wait(chat)["tokens"]["completion"] > 0
        assert runner_pids(cold) == {pid} == status_pids(a)


def test_a_runner_whose_loading_client_left_is_kept_track_of(cold: Daemon) -> None:
    model = default_model(cold)
    c = cold.client()
    c.send("models.load", {"model": model})
    starting(cold)
    c.close()
    with cold.client() as other:
        listed = until(lambda: status_pids(other), "the runner to be ready and listed")
        assert runner_pids(cold) == listed
        assert other.call("models.unload", {"model": model})["unloaded"] == 1
        until(lambda: no_runner_left(cold), "the runner to stop", 30)


# 3. A runner being stopped, or dead, is never handed a request.


def test_a_request_sent_during_unload_gets_a_fresh_runner(cold: Daemon) -> None:
    model = default_model(cold)
    with cold.client() as c:
        c.call("chat", SHORT)
        for _ in range(3):
            old = status_pids(c)
            unload = c.send("models.unload", {"model": model})
            chat = c.send("chat", SHORT)
            assert c.wait(unload)["unloaded"] == 1
            assert c.wait(chat)["tokens"]["completion"] > 0  # not runner_failed
            assert status_pids(c) and not status_pids(c) & old
        until(lambda: runner_pids(cold) == status_pids(c), "the old runners to be reaped", 30)


def test_a_request_its_runner_died_before_reading_is_retried_on_a_fresh_one(
    cold: Daemon,
) -> None:
    with cold.client() as c:
        c.call("chat", SHORT)
        (pid,) = status_pids(c)
        os.kill(pid, signal.SIGSTOP)  # the command waits in the pipe of a runner that dies
        try:
            rid = c.send("chat", SHORT)
            until(lambda: any(r["busy"] for r in c.call("status")["runners"]), "the command")
        finally:
            os.kill(pid, signal.SIGKILL)
        assert c.wait(rid)["tokens"]["completion"] > 0  # not runner_failed
        fresh = status_pids(c)
        assert fresh and pid not in fresh
        until(lambda: runner_pids(cold) == fresh and not zombies(cold), "the dead one reaped", 30)


# 8. Keep-alive counts from the last use, whatever was unloaded before.


def test_a_keep_alive_timer_from_before_an_unload_does_not_unload_early() -> None:
    """chat → unload → load: the chat's timer must not unload the loaded runner. It would
    fire `gap` seconds before the load's own (if the load is done by then: `keep` is long
    enough for a slow start)."""
    keep, gap = 12.0, 2.0
    home = make_home(f"keep_alive = {keep}\n")
    daemon = start_daemon(home)
    try:
        model = default_model(daemon)
        with daemon.client() as c:
            c.call("chat", SHORT)  # arms a timer for `keep` seconds from now
            assert c.call("models.unload", {"model": model})["unloaded"] == 1
            time.sleep(gap)
            sent = time.monotonic()
            pid = c.call("models.load", {"model": model})["pid"]  # its timer: from its start
            while (now := time.monotonic()) < sent + keep:
                pids = status_pids(c)
                if time.monotonic() < sent + keep:  # answered before the load's timer fired
                    assert pids == {pid}, f"unloaded {now - sent:.1f}s after the load"
                time.sleep(0.05)
            until(lambda: not status_pids(c), "keep-alive to unload it", 60)
            until(lambda: no_runner_left(daemon), "the runner to exit", 30)
    finally:
        daemon.stop()
        shutil.rmtree(home, ignore_errors=True)
