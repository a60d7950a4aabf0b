"""The scheduler: one runner per loaded model, queues, fairness and keep-alive.

Keep-alive works like ollama's: after the last request a timer unloads the model;
0 unloads at once, a negative value pins it. Each model has a bounded queue; when
it is full the client gets `busy`. Waiting requests are served round-robin by
client, so one client's burst cannot starve another.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from daemon.engine.process import OnDelta, RunnerProcess
from daemon.errors import Busy, HearthError, RunnerFailed

log = logging.getLogger(__name__)

Spawn = Callable[[str, Path, int, IO[bytes]], Awaitable[RunnerProcess]]


@dataclass(eq=False)
class Job:
    """One generation request, waiting or running."""

    client: int
    params: dict[str, Any]
    on_delta: OnDelta
    future: asyncio.Future[Any] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    running: bool = False
    cancelled: bool = False


@dataclass(eq=False)
class Slot:
    """A (model, engine) pair: its runner, its queue and its keep-alive timer."""

    key: tuple[str, str]
    path: Path
    runner: RunnerProcess | None = None
    queues: dict[int, deque[Job]] = field(default_factory=dict)
    current: Job | None = None
    worker: asyncio.Task[None] | None = None
    timer: asyncio.TimerHandle | None = None

    def pending(self) -> int:
        return sum(len(q) for q in self.queues.values())


class Scheduler:
    def __init__(
        self, *, keep_alive: float, queue_size: int, n_ctx: int, log_file: IO[bytes],
        spawn: Spawn = RunnerProcess.start,
    ) -> None:  # fmt: skip
        self.keep_alive = keep_alive
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
        job = Job(client, params, on_delta)
        slot.queues.setdefault(client, deque()).append(job)
        if slot.timer:
            slot.timer.cancel()
            slot.timer = None
        if slot.worker is None or slot.worker.done():
            slot.worker = asyncio.create_task(self._work(slot))
        return job

    def cancel(self, job: Job) -> None:
        """Stop a job: dequeue it if waiting, or tell its runner to stop within a token."""
        if job.future.done() or job.cancelled:
            return
        job.cancelled = True
        for slot in self.slots.values():
            if slot.current is job and slot.runner:
                slot.runner.cancel()
                return
            queue = slot.queues.get(job.client)
            if queue and job in queue:
                queue.remove(job)
                job.future.set_result(_cancelled_result())
                return

    async def load(self, model: str, engine: str, path: Path) -> RunnerProcess:
        slot = self._slot(model, engine, path)
        if slot.runner is None or not slot.runner.alive:
            slot.runner = await self.spawn(engine, path, self.n_ctx, self.log_file)
            log.info("loaded %s on %s (runner pid %d)", model, engine, slot.runner.pid)
            if not slot.pending() and slot.current is None:
                self._arm_timer(slot)
        return slot.runner

    async def unload(self, model: str) -> int:
        """Stop every runner of a model; waiting and running requests end as cancelled."""
        count = 0
        for slot in [s for s in self.slots.values() if s.key[0] == model]:
            for queue in slot.queues.values():
                for job in queue:
                    job.cancelled = True
                    job.future.set_result(_cancelled_result())
                queue.clear()
            if slot.current:
                self.cancel(slot.current)
            if slot.runner:
                await slot.runner.stop()
                slot.runner = None
                count += 1
        return count

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
            slot.current, job.running = job, True
            try:
                runner = await self.load(slot.key[0], slot.key[1], slot.path)
                result = await runner.generate(job.params, job.on_delta)
                if result["finish_reason"] == "cancelled":  # counts only: never user text
                    log.info("request cancelled after %d tokens", result["tokens"]["completion"])
                if not job.future.done():
                    job.future.set_result(result)
            except HearthError as exc:
                if isinstance(exc, RunnerFailed) and slot.runner and not slot.runner.alive:
                    slot.runner = None
                if not job.future.done():
                    job.future.set_exception(exc)
            except Exception as exc:  # a bug must not kill the queue: report it to the client
                log.exception("request failed")
                if not job.future.done():
                    job.future.set_exception(RunnerFailed(f"internal error: {exc}"))
            finally:
                slot.current = None
        self._arm_timer(slot)

    def _arm_timer(self, slot: Slot) -> None:
        if self.keep_alive < 0 or slot.runner is None:
            return
        if self.keep_alive == 0:
            self._spawn_expiry(slot)
        else:
            loop = asyncio.get_running_loop()
            slot.timer = loop.call_later(self.keep_alive, self._spawn_expiry, slot)

    def _spawn_expiry(self, slot: Slot) -> None:
        task = asyncio.create_task(self._expire(slot))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _expire(self, slot: Slot) -> None:
        if slot.pending() or slot.current is not None or slot.runner is None:
            return
        runner, slot.runner = slot.runner, None
        log.info("unloading %s after keep-alive", slot.key[0])
        await runner.stop()

    def runners(self) -> list[dict[str, Any]]:
        return [
            {
                "model": s.key[0],
                "engine": s.key[1],
                "pid": s.runner.pid,
                "busy": s.current is not None,
            }
            for s in self.slots.values()
            if s.runner and s.runner.alive
        ]

    def queue_depth(self) -> int:
        return sum(s.pending() for s in self.slots.values())

    async def close(self) -> None:
        for slot in self.slots.values():
            if slot.timer:
                slot.timer.cancel()
            if slot.runner:
                await slot.runner.stop()
                slot.runner = None


def _cancelled_result() -> dict[str, Any]:
    return {
        "text": "",
        "finish_reason": "cancelled",
        "tokens": {"prompt": 0, "completion": 0},
        "timings": {"ttft_ms": 0.0, "tokens_per_s": 0.0, "total_ms": 0.0},
    }
