"""The scheduler: one runner per loaded model, queues, priorities, fairness and keep-alive.

Keep-alive works like ollama's: after the last request a timer unloads the model;
0 unloads at once, a negative value pins it. Each model has a bounded queue; when
it is full the client gets `busy`. Waiting requests are served round-robin by
client, so one client's burst cannot starve another.

Interactive requests (someone waits: the hotkey, the tray, the CLI) go before
background ones (plugins, scheduled work). One that arrives while a background request
computes on the same runner has it paused at its next token: the runner sets its whole
state aside, serves the interactive work, and resumes it with the same text it would
have made uninterrupted. Background work still progresses under a steady stream of
interactive requests: once interactive work has computed for ``starve_after_s`` (10 s)
while background work waited, background gets a turn of at least ``turn_s`` (1 s)
that nothing pauses.

A job goes queued → starting (its runner loads) → running ⇄ paused → done, and a cancel
takes effect in every state. A slot starts at most one runner at a time, and takes a
runner out of service before stopping it, so no request is ever handed a runner on its
way out.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import IO, Any, Protocol

from daemon.engine.jobs import Job, Priority, Slot
from daemon.engine.process import OnDelta, Outcome, Paused, RunnerGone, RunnerProcess
from daemon.errors import Busy, Cancelled, HearthError, RunnerFailed

log = logging.getLogger(__name__)

Spawn = Callable[[str, Path, int, IO[bytes]], Awaitable[RunnerProcess]]
STARVE_AFTER_S = 10.0  # interactive compute while background work waits, before its turn
TURN_S = 1.0  # that turn: background computes this long before a pause can take effect
_SHOWN = {"queued": "waiting", "starting": "starting", "running": "running", "paused": "paused"}


class Admit(Protocol):
    """Asked before a runner starts (engine/memory.py); raises to refuse the load."""

    async def admit(self, scheduler: Scheduler, slot: Slot, n_ctx: int) -> None: ...


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
        self.starve_after_s = STARVE_AFTER_S
        self.turn_s = TURN_S
        self.slots: dict[tuple[str, str], Slot] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def _slot(self, model: str, engine: str, path: Path) -> Slot:
        key = (model, engine)
        if key not in self.slots:
            self.slots[key] = Slot(key, path)
        return self.slots[key]

    async def submit(
        self, model: str, engine: str, path: Path, client: int, params: dict[str, Any],
        on_delta: OnDelta, label: Any = None,
    ) -> Job:  # fmt: skip
        """Queue a request; the returned Job's future resolves to the runner's result.
        ``params["priority"]`` is ``interactive`` (the default) or ``background``."""
        slot = self._slot(model, engine, path)
        if slot.pending() >= self.queue_size:
            raise Busy(
                f"{model} has {slot.pending()} requests waiting; retry in a moment",
                retry_after_ms=1000,
            )
        priority: Priority = (
            "background" if params.get("priority") == "background" else "interactive"
        )
        job = Job(slot, client, params, on_delta, priority=priority, label=label)
        if priority == "background":
            slot.background.push(job)
        else:
            slot.interactive.push(job)
            self._preempt(slot)
        self._disarm(slot)
        if slot.worker is None or slot.worker.done():
            slot.worker = asyncio.create_task(self._work(slot))
        return job

    def cancel(self, job: Job) -> None:
        """Stop a job: one waiting or starting ends at once, a running one within a token,
        a paused one as soon as its runner says what it had made."""
        if job.state == "running":
            if not job.cancelled and job.runner is not None:
                job.runner.cancel(job.rid)
            job.cancelled = True
        elif job.state == "paused":
            if job.cancelled or job.runner is None:
                return
            job.cancelled = True
            if job in job.slot.paused:
                job.slot.paused.remove(job)
            job.runner.cancel(job.rid)  # its runner ends it now, even while it computes another
            self._background(self._settle(job))
        elif job.state != "done":
            job.slot.interactive.remove(job) or job.slot.background.remove(job)
            self._end(job, _cancelled_result())

    async def _settle(self, job: Job) -> None:
        """End a paused job that was cancelled with what its runner reports (its text)."""
        assert job.runner is not None
        try:
            outcome = await job.runner.follow(job.rid, self._relay(job))
        except HearthError:  # the runner went meanwhile: it was to end anyway
            outcome = _cancelled_result()
        self._end(job, outcome if isinstance(outcome, dict) else _cancelled_result())

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
            for job in slot.interactive.clear() + slot.background.clear():
                self._end(job, _cancelled_result())
            for job in list(slot.paused):  # told before the runner stops: ends with its text
                self.cancel(job)
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
        if not slot.busy():
            self._arm_timer(slot)
        return runner

    def _detach(self, slot: Slot) -> None:
        """Take the slot's runner out of service and stop it in the background; the jobs
        it held paused fail (their state was in it)."""
        if slot.runner is not None:
            runner, slot.runner = slot.runner, None
            self._lost(slot, runner)
            self._background(runner.stop())

    def _lost(self, slot: Slot, runner: RunnerProcess) -> None:
        for job in [j for j in slot.paused if j.runner is runner]:
            slot.paused.remove(job)
            self._end(job, _paused_and_lost(runner))

    async def _work(self, slot: Slot) -> None:
        while (job := self._next(slot)) is not None:
            slot.current = job
            began = time.monotonic()
            try:
                outcome = await self._run(slot, job)
                if isinstance(outcome, dict):
                    if outcome["finish_reason"] == "cancelled":  # counts only: never user text
                        tokens = outcome["tokens"]["completion"]
                        log.info("request cancelled after %d tokens", tokens)
                    self._end(job, outcome)
            except HearthError as exc:
                self._end(job, exc)
            except Exception as exc:  # a bug must not kill the queue: report it to the client
                log.exception("request failed")
                self._end(job, RunnerFailed(f"internal error: {exc}"))
            finally:
                slot.current = None
                slot.last_used = time.monotonic()
                self._account(slot, job, slot.last_used - began)
        self._arm_timer(slot)

    def _next(self, slot: Slot) -> Job | None:
        """Interactive work first, unless background work is owed its turn; then paused
        background work, then background work not started yet."""
        owed = slot.background_waits() and slot.owed_s >= self.starve_after_s
        if slot.interactive and not owed:
            return slot.interactive.pop()
        job = slot.paused.popleft() if slot.paused else slot.background.pop()
        if job is None:
            return slot.interactive.pop()
        job.owed = owed
        return job

    def _account(self, slot: Slot, job: Job, ran: float) -> None:
        """Count interactive compute against waiting background work; a turn pays it."""
        if not slot.background_waits():
            slot.owed_s = 0.0
        elif job.priority == "interactive":
            slot.owed_s += ran
        elif ran >= self.turn_s:
            slot.owed_s = 0.0

    async def _run(self, slot: Slot, job: Job) -> Outcome | None:
        """Run a job on the slot's runner, or resume it. A command that never reached its
        runner (it had died idle, or was being stopped) is retried once on a fresh one:
        see RunnerGone. None: put back in its queue (interactive work came first)."""
        if job.state == "paused":
            return await self._resume(slot, job)
        try:
            return await self._run_once(slot, job)
        except RunnerGone:
            return await self._run_once(slot, job)

    async def _run_once(self, slot: Slot, job: Job) -> Outcome | None:
        job.enter("starting")
        runner = await self._ready(slot)
        if job.future.done():  # cancelled while its runner started: it never runs
            return _cancelled_result()
        if job.priority == "background" and slot.interactive and not job.owed:
            job.enter("queued")  # interactive work came while the runner started
            slot.background.push(job, front=True)
            return None
        job.runner = runner
        job.rid = runner.request(job.params)
        return await self._follow(slot, job)

    async def _resume(self, slot: Slot, job: Job) -> Outcome:
        runner = job.runner
        assert runner is not None
        if runner is not slot.runner or not runner.resume(job.rid):
            if slot.runner is runner:
                self._detach(slot)  # the other jobs paused there fail too
            raise _paused_and_lost(runner)
        return await self._follow(slot, job)

    async def _follow(self, slot: Slot, job: Job) -> Outcome:
        """Relay a running job until it ends or is paused."""
        runner = job.runner
        assert runner is not None
        job.enter("running")
        job.pause_asked = False
        job.turn_end = time.monotonic() + (self.turn_s if job.owed else 0.0)
        self._preempt(slot)
        try:
            outcome = await runner.follow(job.rid, self._relay(job))
        except RunnerFailed:
            if slot.runner is runner and not runner.alive:
                self._detach(slot)
            if job.cancelled:  # stopped under it (an unload had to kill it): as it was asked
                return _cancelled_result()
            raise
        if isinstance(outcome, Paused):
            if job.cancelled:  # the cancel crossed the pause: it ends now
                runner.cancel(job.rid)
                return await self._follow(slot, job)
            job.enter("paused")
            slot.paused.append(job)
            log.info("background request paused after %d tokens", outcome.tokens)
        return outcome

    def _relay(self, job: Job) -> OnDelta:
        def relay(text: str, tokens: int) -> None:
            job.tokens = tokens
            job.on_delta(text, tokens)

        return relay

    def _preempt(self, slot: Slot) -> None:
        """Pause the slot's running background job if interactive work waits: now, or
        when the turn it is owed ends."""
        if slot.preempt is not None:
            slot.preempt.cancel()
            slot.preempt = None
        job = slot.current
        if (
            job is None or job.state != "running" or job.priority != "background"
            or job.pause_asked or job.cancelled or not slot.interactive or job.runner is None
        ):  # fmt: skip
            return
        wait = job.turn_end - time.monotonic()
        if wait > 0:
            slot.preempt = asyncio.get_running_loop().call_later(wait, self._preempt, slot)
            return
        job.pause_asked = True
        job.runner.pause(job.rid)

    def _end(self, job: Job, outcome: dict[str, Any] | HearthError) -> None:
        """Settle a job, once: the first outcome wins."""
        job.enter("done")
        job.runner = None
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
        if slot.busy() or slot.runner is None:
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
            if s.runner is not None and s.starting is None and not s.busy()
            and now - s.last_used >= idle_for
        ]  # fmt: skip
        return sorted(idle, key=lambda s: s.last_used)

    def runners(self) -> list[dict[str, Any]]:
        return [
            {
                "model": s.key[0],
                "engine": s.key[1],
                "pid": s.runner.pid,
                "busy": s.current is not None and s.current.state == "running",
                "paused": len(s.paused),
            }
            for s in self.slots.values()
            if s.runner and s.runner.alive
        ]

    def requests(self) -> list[dict[str, Any]]:
        """Every request not ended: what it is and where it stands (never its text)."""
        now = time.monotonic()
        shown = []
        for slot in self.slots.values():
            current = [slot.current] if slot.current else []
            jobs = [*current, *slot.paused, *slot.interactive, *slot.background]
            for job in jobs:
                if job.state == "done":
                    continue
                shown.append({
                    "id": job.label, "model": slot.key[0], "engine": slot.key[1],
                    "priority": job.priority, "state": _SHOWN[job.state],
                    "tokens": job.tokens, "for_s": round(now - job.since, 1),
                })  # fmt: skip
        return shown

    def queue_depth(self) -> int:
        return sum(s.pending() for s in self.slots.values())

    async def close(self) -> None:
        await self._clear(list(self.slots.values()))
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _retrieve(task: asyncio.Task[RunnerProcess]) -> None:
    """Mark a start's failure as seen: its waiters may all have left."""
    if not task.cancelled():
        task.exception()


def _paused_and_lost(runner: RunnerProcess) -> RunnerFailed:
    code = runner.exit_code
    how = f" (signal {-code})" if code is not None and code < 0 else ""
    return RunnerFailed(
        f"the model process stopped{how} while this request was paused, and its state "
        "with it; send it again (the next request starts a new process)",
        exit=code,
    )


def _cancelled_result() -> dict[str, Any]:
    return {
        "text": "",
        "finish_reason": "cancelled",
        "tokens": {"prompt": 0, "completion": 0},
        "timings": {"ttft_ms": 0.0, "tokens_per_s": 0.0, "total_ms": 0.0},
    }
