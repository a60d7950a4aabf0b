"""What the scheduler keeps per request and per model: a Job, and a Slot with its queues.

Plain state, no behaviour beyond reading it: the scheduler (engine/scheduler.py) moves
jobs through their states and slots through their runners.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from daemon.engine.process import OnDelta, RunnerProcess
from daemon.engine.queues import FairQueue

State = Literal["queued", "starting", "running", "paused", "done"]
Priority = Literal["interactive", "background"]


@dataclass(eq=False)
class Job:
    """One generation request: queued → starting (its runner loads) → running ⇄ paused
    → done.

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
    runner: RunnerProcess | None = None  # while running or paused
    rid: int = 0  # the runner's id for it
    cancelled: bool = False
    priority: Priority = "interactive"
    label: Any = None  # the client's id for the request, shown in status
    tokens: int = 0  # generated so far
    since: float = field(default_factory=time.monotonic)  # in its state since
    pause_asked: bool = False
    owed: bool = False  # background work's turn after waiting long: not paused at once
    turn_end: float = 0.0  # while running: a pause takes effect after this (monotonic)

    def enter(self, state: State) -> None:
        self.state, self.since = state, time.monotonic()


@dataclass(eq=False)
class Slot:
    """A (model, engine) pair: its runner, its queues, its paused jobs, its keep-alive
    timer.

    One runner start at a time: `starting` is the task every waiter shares."""

    key: tuple[str, str]
    path: Path
    runner: RunnerProcess | None = None
    starting: asyncio.Task[RunnerProcess] | None = None
    interactive: FairQueue[Job] = field(default_factory=FairQueue)
    background: FairQueue[Job] = field(default_factory=FairQueue)
    paused: deque[Job] = field(default_factory=deque)  # resumed first come, first served
    current: Job | None = None
    worker: asyncio.Task[None] | None = None
    timer: asyncio.TimerHandle | None = None
    preempt: asyncio.TimerHandle | None = None  # a pause due when a background turn ends
    owed_s: float = 0.0  # interactive compute while background work waited, since its turn
    last_used: float = 0.0  # monotonic time its last request ended

    def pending(self) -> int:
        """Requests waiting to start (paused ones not counted)."""
        return len(self.interactive) + len(self.background)

    def busy(self) -> bool:
        return self.current is not None or bool(self.pending() or self.paused)

    def background_waits(self) -> bool:
        return bool(self.paused or self.background)
