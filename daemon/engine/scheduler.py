"""The scheduler: one runner per loaded model, queues, fairness and keep-alive.

Keep-alive works like ollama's: after the last request a timer unloads the model;
0 unloads at once, a negative value pins it. Each model has a bounded queue; when
it is full the client gets `busy`. Waiting requests are served round-robin by
client, so one client's burst cannot starve another.

A job goes queued → starting (its runner loads) → running → done, and a cancel takes
effect in every state. A slot starts at most one runner at a time, and takes a runner
out of service before stopping it, so no request is ever handed a runner on its way out.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal, Protocol

from daemon.engine.process import OnDelta, RunnerGone, RunnerProcess
from daemon.errors import Busy, Cancelled, HearthError, RunnerFailed

log = logging.getLogger(__name__)

Spawn = Callable[[str, Path, int, IO[bytes]], Awaitable[RunnerProcess]]
State = Literal["queued", "starting", "running", "done"]


class Admit(Protocol):
    """Asked before a runner starts (engine/memory.py); raises to refuse the load."""

    async def admit(self, scheduler: Scheduler, slot: Slot, n_ctx: int) -> None: ...


@dataclass(eq=False)
class Job:
    """One generation request: queued → starting (its runner loads) → running → done.

    A job ends exactly once (`Scheduler._end`): with a result, a cancelled result or
    an error, whichever comes first; later outcomes are dropped."""

    slot: Slot
    client: int
    params: dict[str, Any]
    on_delta: OnDelta
    future: asyncio.Future[Any] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    state: State = "queued"
    runner: RunnerProcess | None = None  # while running
    cancelled: bool = False


@dataclass(eq=False)
class Slot:
    """A (model, engine) pair: its runner, its queue and its keep-alive timer.

    One runner start at a time: `starting` is the task every waiter shares."""

    key: tuple[str, str]
    path: Path
    runner: RunnerProcess | None = None
    starting: asyncio.Task[RunnerProcess] | None = None
    queues: dict[int, deque[Job]] = field(default_factory=dict)
    current: Job | None = None
    worker: asyncio.Task[None] | None = None
    timer: asyncio.TimerHandle | None = None
    last_used: float = 0.0  # monotonic time its last request ended

    def pending(self) -> int:
        return sum(len(q) for q in self.queues.values())


class Scheduler:
    def __init__(
        self, *, keep_alive: float, queue_size: int, n_ctx: int, log_file: IO[bytes],
        spawn: Spawn = RunnerProcess.start, memory: Admit | None = None,
    ) -> None:  # fmt: skip
        self.keep_alive = keep_alive
        self.memory = memory  # refuses a model that cannot fit; None checks nothing
        self.queue_size = queue_size
        self.n_ctx = n_ctx
        self.log_file = log_file
        self.spawn = spawn  # a field, so tests can start runners their own way
        self.slots: dict[tuple[str, str], Slot] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def _slot(self, model: str, engine: str, path: Path) -> Slot:
        key = (model, engine)
        if key not in self.slots:
            self.slots[key] = Slot(key, path)
        return self.slots[key]

    async def submit(
        self, model: str, engine: str, path: Path, client: int, params: dict[str, Any],
        on_delta: OnDelta,
    ) -> Job:  # fmt: skip
        """Queue a request; the returned Job's future resolves to the runner's result."""
        slot = self._slot(model, engine, path)
        if slot.pending() >= self.queue_size:
            raise Busy(
                f"{model} has {slot.pending()} requests waiting; retry in a moment",
                retry_after_ms=1000,
            )
        job = Job(slot, client, params, on_delta)
        slot.queues.setdefault(client, deque()).append(job)
        self._disarm(slot)
        if slot.worker is None or slot.worker.done():
            slot.worker = asyncio.create_task(self._work(slot))
        return job

    def cancel(self, job: Job) -> None:
        """Stop a job: one waiting or starting ends at once, a running one within a token."""
        if job.state == "running":
            if not job.cancelled and job.runner is not None:
                job.runner.cancel()
            job.cancelled = True
        elif job.state != "done":
            queue = job.slot.queues.get(job.client)
            if queue and job in queue:
                queue.remove(job)
            self._end(job, _cancelled_result())

    async def load(self, model: str, engine: str, path: Path) -> RunnerProcess:
        """The model's runner, started now if it is not up (or joining its start)."""
        return await self._ready(self._slot(model, engine, path))

    async def unload(self, model: str) -> int:
        """Stop every runner of a model, and any that is starting; its requests end cancelled."""
        slots = [s for s in self.slots.values() if s.key[0] == model]
        return await self._clear(slots)

    async def _clear(self, slots: list[Slot]) -> int:
        """Detach each slot's runner (new requests start a fresh one), then stop it."""
        stopping: list[Awaitable[Any]] = []
        for slot in slots:
            self._disarm(slot)
            for queue in slot.queues.values():
                for job in queue:
                    self._end(job, _cancelled_result())
            slot.queues.clear()
            if slot.current:
                self.cancel(slot.current)
            if slot.starting:  # its runner is killed and reaped as the start is cancelled
                slot.starting.cancel()
                stopping.append(slot.starting)
                slot.starting = None
            if slot.runner:
                stopping.append(slot.runner.stop())
                slot.runner = None
        # Shielded: an unload whose client leaves still kills and reaps what it stopped.
        await asyncio.shield(asyncio.gather(*stopping, return_exceptions=True))
        return len(stopping)

    async def _ready(self, slot: Slot) -> RunnerProcess:
        """The slot's runner, started if need be: one start per slot, shared by its waiters.

        A waiter that is cancelled (its client left) leaves the start to the others; the
        runner then idles into keep-alive like any other."""
        if slot.runner is not None and not slot.runner.alive:
            self._detach(slot)  # it died: reap it, start another
        if slot.runner is not None:
            return slot.runner
        if slot.starting is None:
            slot.starting = asyncio.create_task(self._start(slot))
            slot.starting.add_done_callback(_retrieve)
        starting = slot.starting
        await asyncio.wait([starting])
        if starting.cancelled():
            raise Cancelled(f"{slot.key[0]} was unloaded while it was starting")
        return starting.result()

    async def _start(self, slot: Slot) -> RunnerProcess:
        me = asyncio.current_task()
        try:
            if self.memory is not None:
                await self.memory.admit(self, slot, self.n_ctx)
            runner = await self.spawn(slot.key[1], slot.path, self.n_ctx, self.log_file)
        except BaseException:
            if slot.starting is me:
                slot.starting = None
            raise
        if slot.starting is not me:  # unloaded just as it became ready
            await runner.stop()
            raise asyncio.CancelledError
        slot.starting, slot.runner = None, runner
        slot.last_used = time.monotonic()
        log.info("loaded %s on %s (runner pid %d)", slot.key[0], slot.key[1], runner.pid)
        if not slot.pending() and slot.current is None:
            self._arm_timer(slot)
        return runner

    def _detach(self, slot: Slot) -> None:
        """Take the slot's runner out of service and stop it in the background."""
        if slot.runner is not None:
            runner, slot.runner = slot.runner, None
            self._background(runner.stop())

    async def _work(self, slot: Slot) -> None:
        turn = deque(slot.queues)
        while slot.pending():
            turn = turn or deque(c for c in slot.queues if slot.queues[c])
            client = turn.popleft()
            queue = slot.queues.get(client)
            if not queue:
                continue
            job = queue.popleft()
            if not queue:
                del slot.queues[client]
            slot.current = job
            try:
                result = await self._run(slot, job)
                if result["finish_reason"] == "cancelled":  # counts only: never user text
                    log.info("request cancelled after %d tokens", result["tokens"]["completion"])
                self._end(job, result)
            except HearthError as exc:
                self._end(job, exc)
            except Exception as exc:  # a bug must not kill the queue: report it to the client
                log.exception("request failed")
                self._end(job, RunnerFailed(f"internal error: {exc}"))
            finally:
                slot.current = None
                slot.last_used = time.monotonic()
        self._arm_timer(slot)

    async def _run(self, slot: Slot, job: Job) -> dict[str, Any]:
        """Run a job on the slot's runner. A command that never reached its runner (it had
        died idle, or was being stopped) is retried once on a fresh one: see RunnerGone."""
        try:
            return await self._run_once(slot, job)
        except RunnerGone:
            return await self._run_once(slot, job)

    async def _run_once(self, slot: Slot, job: Job) -> dict[str, Any]:
        job.state = "starting"
        runner = await self._ready(slot)
        if job.future.done():  # cancelled while its runner started: it never runs
            return _cancelled_result()
        job.state, job.runner = "running", runner
        try:
            result: dict[str, Any] = await runner.generate(job.params, job.on_delta)
        except RunnerFailed:
            if slot.runner is runner and not runner.alive:
                self._detach(slot)
            if job.cancelled:  # stopped under it (an unload had to kill it): as it was asked
                return _cancelled_result()
            raise
        return result

    def _end(self, job: Job, outcome: dict[str, Any] | HearthError) -> None:
        """Settle a job, once: the first outcome wins."""
        job.state, job.runner = "done", None
        if job.future.done():
            return
        if isinstance(outcome, HearthError):
            job.future.set_exception(outcome)
        else:
            job.future.set_result(outcome)

    def _disarm(self, slot: Slot) -> None:
        if slot.timer:
            slot.timer.cancel()
            slot.timer = None

    def _arm_timer(self, slot: Slot) -> None:
        self._disarm(slot)  # one timer per slot: a stale one would unload early
        if self.keep_alive < 0 or slot.runner is None:
            return
        if self.keep_alive == 0:
            self._background(self._expire(slot))
        else:
            loop = asyncio.get_running_loop()
            slot.timer = loop.call_later(self.keep_alive, self._on_timer, slot)

    def _on_timer(self, slot: Slot) -> None:
        slot.timer = None
        self._background(self._expire(slot))

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _expire(self, slot: Slot) -> None:
        await self.release(slot, "after keep-alive")

    async def release(self, slot: Slot, why: str) -> None:
        """Stop an idle slot's runner (a request arriving meanwhile starts a fresh one)."""
        if slot.pending() or slot.current is not None or slot.runner is None:
            return
        self._disarm(slot)
        runner, slot.runner = slot.runner, None
        log.info("unloading %s %s", slot.key[0], why)
        await runner.stop()

    def idle_slots(self, idle_for: float) -> list[Slot]:
        """Slots with a runner, nothing to do, and unused for ``idle_for`` s; LRU first."""
        now = time.monotonic()
        idle = [
            s for s in self.slots.values()
            if s.runner is not None and s.starting is None and s.current is None
            and not s.pending() and now - s.last_used >= idle_for
        ]  # fmt: skip
        return sorted(idle, key=lambda s: s.last_used)

    def runners(self) -> list[dict[str, Any]]:
        return [
            {
                "model": s.key[0],
                "engine": s.key[1],
                "pid": s.runner.pid,
                "busy": s.current is not None and s.current.state == "running",
            }
            for s in self.slots.values()
            if s.runner and s.runner.alive
        ]

    def queue_depth(self) -> int:
        return sum(s.pending() for s in self.slots.values())

    async def close(self) -> None:
        await self._clear(list(self.slots.values()))
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _retrieve(task: asyncio.Task[RunnerProcess]) -> None:
    """Mark a start's failure as seen: its waiters may all have left."""
    if not task.cancelled():
        task.exception()


def _cancelled_result() -> dict[str, Any]:
    return {
        "text": "",
        "finish_reason": "cancelled",
        "tokens": {"prompt": 0, "completion": 0},
        "timings": {"ttft_ms": 0.0, "tokens_per_s": 0.0, "total_ms": 0.0},
    }
