"""Scheduler logic with a stand-in runner: fairness, keep-alive pinning, unload.

The real runner is covered by the integration tests; here the runner is swapped
through the scheduler's `spawn` field to observe ordering precisely.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from daemon.engine.process import Paused, RunnerGone
from daemon.engine.scheduler import Scheduler
from daemon.errors import RunnerFailed


class StandInRunner:
    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.alive = True
        self.pid = 4242
        self.stopped = False
        self.exit_code: int | None = None
        self.rids = 0

    def request(self, job: dict[str, Any]) -> int:
        self.log.append(job["tag"])
        self.rids += 1
        return self.rids

    async def follow(self, rid: int, on_delta: Callable[[str, int], None]) -> Any:
        await asyncio.sleep(0.01)
        on_delta("x", 1)
        return {"text": "x", "finish_reason": "stop"}

    def cancel(self, rid: int) -> None:
        pass

    async def stop(self) -> None:
        self.alive = False
        self.stopped = True


def make(keep_alive: float, log: list[str], made: list[StandInRunner]) -> Scheduler:
    async def spawn(engine: str, path: Path, n_ctx: int, out: IO[bytes]) -> Any:
        made.append(StandInRunner(log))
        return made[-1]

    return Scheduler(keep_alive=keep_alive, queue_size=64, n_ctx=512, log_file=None, spawn=spawn)  # type: ignore[arg-type]


def test_a_burst_from_one_client_does_not_starve_another() -> None:
    async def scenario() -> list[str]:
        log: list[str] = []
        s = make(-1, log, [])
        jobs = [
            await s.submit("m", "llamacpp", Path("m"), 1, {"tag": f"a{i}"}, lambda t, n: None)
            for i in range(6)
        ]
        jobs.append(await s.submit("m", "llamacpp", Path("m"), 2, {"tag": "b0"}, lambda t, n: None))
        await asyncio.gather(*(j.future for j in jobs))
        return log

    order = asyncio.run(scenario())
    assert order.index("b0") <= 2, order


def test_keep_alive_zero_stops_the_runner_and_negative_pins_it() -> None:
    async def scenario(keep_alive: float) -> bool:
        made: list[StandInRunner] = []
        s = make(keep_alive, [], made)
        job = await s.submit("m", "llamacpp", Path("m"), 1, {"tag": "a"}, lambda t, n: None)
        await job.future
        await asyncio.sleep(0.05)
        return made[0].stopped

    assert asyncio.run(scenario(0)) is True
    assert asyncio.run(scenario(-1)) is False


def test_unload_cancels_waiting_requests() -> None:
    async def scenario() -> list[str]:
        s = make(-1, [], [])
        jobs = [
            await s.submit("m", "llamacpp", Path("m"), 1, {"tag": str(i)}, lambda t, n: None)
            for i in range(3)
        ]
        await s.unload("m")
        results = await asyncio.gather(*(j.future for j in jobs))
        return [r["finish_reason"] for r in results]

    reasons = asyncio.run(scenario())
    assert reasons.count("cancelled") >= 2


def test_a_job_cancelled_while_its_runner_starts_never_runs_and_loads_share_one_start() -> None:
    async def scenario() -> tuple[list[str], int, str]:
        log: list[str] = []
        made: list[StandInRunner] = []
        gate = asyncio.Event()

        async def slow_spawn(engine: str, path: Path, n_ctx: int, out: IO[bytes]) -> Any:
            await gate.wait()
            made.append(StandInRunner(log))
            return made[-1]

        s = Scheduler(keep_alive=-1, queue_size=8, n_ctx=512, log_file=None, spawn=slow_spawn)  # type: ignore[arg-type]
        job = await s.submit("m", "llamacpp", Path("m"), 1, {"tag": "a"}, lambda t, n: None)
        loads = [asyncio.create_task(s.load("m", "llamacpp", Path("m"))) for _ in range(3)]
        await asyncio.sleep(0.01)
        assert job.state == "starting"
        s.cancel(job)
        result = await job.future  # at once: the start is still held back
        gate.set()
        await asyncio.gather(*loads)
        await asyncio.sleep(0.01)
        return log, len(made), result["finish_reason"]

    ran, runners, reason = asyncio.run(scenario())
    assert (ran, runners, reason) == ([], 1, "cancelled")


def test_unload_during_a_start_cancels_it_and_counts_it() -> None:
    async def scenario() -> tuple[int, bool, str]:
        cancelled = asyncio.Event()

        async def never_ready(engine: str, path: Path, n_ctx: int, out: IO[bytes]) -> Any:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                cancelled.set()  # where RunnerProcess.start kills and reaps its process
                raise

        s = Scheduler(keep_alive=-1, queue_size=8, n_ctx=512, log_file=None, spawn=never_ready)  # type: ignore[arg-type]
        job = await s.submit("m", "llamacpp", Path("m"), 1, {"tag": "a"}, lambda t, n: None)
        await asyncio.sleep(0.01)
        unloaded = await s.unload("m")
        result = await job.future
        return unloaded, cancelled.is_set(), result["finish_reason"]

    assert asyncio.run(scenario()) == (1, True, "cancelled")


class GoneRunner(StandInRunner):
    """A runner that ends before it says a word about the request."""

    def request(self, job: dict[str, Any]) -> int:
        self.alive = False
        raise RunnerGone("gone before it read the request")


def test_a_request_no_runner_read_is_retried_once_on_a_fresh_runner() -> None:
    async def scenario(kinds: list[type[StandInRunner]]) -> tuple[Any, int]:
        made: list[StandInRunner] = []

        async def spawn(engine: str, path: Path, n_ctx: int, out: IO[bytes]) -> Any:
            made.append(kinds[len(made)]([]))
            return made[-1]

        s = Scheduler(keep_alive=-1, queue_size=8, n_ctx=512, log_file=None, spawn=spawn)  # type: ignore[arg-type]
        job = await s.submit("m", "llamacpp", Path("m"), 1, {"tag": "a"}, lambda t, n: None)
        try:
            outcome = await job.future
        except RunnerFailed as exc:
            outcome = exc
        return outcome, len(made)

    result, runners = asyncio.run(scenario([GoneRunner, StandInRunner]))
    assert (result["finish_reason"], runners) == ("stop", 2)
    error, runners = asyncio.run(scenario([GoneRunner, GoneRunner, StandInRunner]))
    assert isinstance(error, RunnerFailed) and runners == 2  # once only


class PausingRunner(StandInRunner):
    """Makes ``job["tokens"]`` tokens, one every 10 ms, and pauses between two when asked."""

    def __init__(self, log: list[str]) -> None:
        super().__init__(log)
        self.left: dict[int, int] = {}
        self.made: dict[int, int] = {}
        self.pausing: set[int] = set()

    def request(self, job: dict[str, Any]) -> int:
        rid = super().request(job)
        self.left[rid], self.made[rid] = int(job.get("tokens", 1)), 0
        return rid

    async def follow(self, rid: int, on_delta: Callable[[str, int], None]) -> Any:
        while self.left[rid]:
            await asyncio.sleep(0.01)
            self.left[rid] -= 1
            self.made[rid] += 1
            on_delta("x", self.made[rid])
            if rid in self.pausing and self.left[rid]:
                self.pausing.discard(rid)
                return Paused(self.made[rid])
        return {"text": "x" * self.made[rid], "finish_reason": "stop"}

    def pause(self, rid: int) -> None:
        self.pausing.add(rid)

    def resume(self, rid: int) -> bool:
        return True


def steady_stream(starve_after_s: float) -> tuple[int, int]:
    """A background job of 100 tokens under 40 interactive requests of 5 tokens, one
    always waiting: (background tokens made, interactive requests served before it ended)."""

    async def scenario() -> tuple[int, int]:
        made: list[StandInRunner] = []

        async def spawn(engine: str, path: Path, n_ctx: int, out: IO[bytes]) -> Any:
            made.append(PausingRunner([]))
            return made[-1]

        s = Scheduler(keep_alive=-1, queue_size=64, n_ctx=512, log_file=None, spawn=spawn)  # type: ignore[arg-type]
        s.starve_after_s, s.turn_s = starve_after_s, 0.1
        tokens = [0]
        on_bg = lambda _, n: tokens.__setitem__(0, n)  # noqa: E731
        bg_params = {"tag": "bg", "tokens": 100, "priority": "background"}
        bg = await s.submit("m", "llamacpp", Path("m"), 1, bg_params, on_bg)
        await asyncio.sleep(0.05)  # under way
        served = 0
        while served < 40 and not bg.future.done():
            job = await s.submit("m", "llamacpp", Path("m"), 2, {"tag": "i", "tokens": 5},
                                 lambda t, n: None)  # fmt: skip
            await s.submit("m", "llamacpp", Path("m"), 3, {"tag": "i", "tokens": 5},
                           lambda t, n: None)  # fmt: skip
            await job.future
            served += 1
        await s.unload("m")
        return tokens[0], served

    return asyncio.run(scenario())


def test_background_work_progresses_under_a_steady_stream_of_interactive_requests() -> None:
    starved, served = steady_stream(starve_after_s=1e9)  # no bound: it waits throughout
    assert served == 40 and starved < 10, (starved, served)
    # A 0.1 s turn after every 0.2 s of interactive work: it ends, interactive work went on.
    progressed, served = steady_stream(starve_after_s=0.2)
    assert progressed == 100 and served >= 10, (progressed, served)
