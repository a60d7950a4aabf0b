"""The daemon's handle on one runner subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from daemon.engine.confinement import RunnerSandbox, runner_env
from daemon.engine.cpu import BACKGROUND_NICE
from daemon.errors import (
    ContextTooLong,
    EngineUnavailable,
    HearthError,
    InvalidModel,
    InvalidParams,
    RunnerFailed,
    StructuredOutputFailed,
)

READY_TIMEOUT = 180.0
OnDelta = Callable[[str, int], None]  # (new text, tokens generated so far)
_LOAD_ERRORS: dict[str, type[HearthError]] = {
    "invalid_model": InvalidModel,
    "engine_unavailable": EngineUnavailable,
}
_ERRORS: dict[str, type[HearthError]] = {
    "context_too_long": ContextTooLong,
    "runner_failed": RunnerFailed,
    "invalid_params": InvalidParams,
    "structured_output_failed": StructuredOutputFailed,
}


class RunnerGone(RunnerFailed):
    """A runner ended before it said a word about a request: it had exited or was being
    stopped when the command was written, or died before reading it.

    Nothing reached the client, so the scheduler retries the request once on a fresh runner."""


@dataclass(frozen=True)
class Paused:
    """The runner set a request aside between two tokens (it was asked to): `resume`
    continues it, `cancel` ends it."""

    tokens: int  # generated so far


Outcome = dict[str, Any] | Paused  # a result, or a pause


@dataclass(eq=False)
class _Request:
    events: asyncio.Queue[dict[str, Any] | None] = field(default_factory=asyncio.Queue)
    answered: bool = False  # the runner said something about it: it may have run


class RunnerProcess:
    """Starts the runner, sends it commands and relays its events to each request.

    One reader task reads the runner's events and hands each to its request: several
    requests may be open at once (one computing, others paused)."""

    def __init__(self, proc: asyncio.subprocess.Process, engine: str, ready: dict[str, Any]):
        self.proc = proc
        self.engine = engine
        self.context_length = int(ready.get("context_length", 0))
        self._next_rid = 0
        self._requests: dict[int, _Request] = {}
        self.exit_code: int | None = None  # once its events ended
        self._reader = asyncio.create_task(self._read())

    @property
    def pid(self) -> int:
        return self.proc.pid

    @classmethod
    async def start(
        cls,
        engine: str,
        model: Path,
        n_ctx: int,
        log: IO[bytes],
        sandbox: RunnerSandbox | None = None,
        background_nice: int = BACKGROUND_NICE,
    ) -> RunnerProcess:
        """Start a runner. ``sandbox`` says how it is confined and takes its reports
        (by default: confined or refused, reports only counted); ``background_nice``:
        the nice value its background requests compute at."""
        sandbox = sandbox or RunnerSandbox()
        report_fd = sandbox.reports(engine)
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "daemon.engine.runner", engine, str(model),
                "--n-ctx", str(n_ctx), "--report-fd", str(report_fd), *sandbox.args(),
                "--background-nice", str(background_nice),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=log,
                limit=1 << 24, env=runner_env(os.environ), pass_fds=(report_fd,),
            )  # fmt: skip
        finally:
            os.close(report_fd)  # the runner holds it now (or failed to start)
        sandbox.spawned(proc.pid)
        assert proc.stdout is not None
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), READY_TIMEOUT)
        except TimeoutError:
            proc.kill()
            raise EngineUnavailable(
                f"the {engine} runner did not start in {READY_TIMEOUT:.0f}s"
            ) from None
        except asyncio.CancelledError:  # unloaded or shut down while starting: leave no process
            proc.kill()
            await proc.wait()
            raise
        details = f"details in {getattr(log, 'name', 'the runner log')}"
        if not line:
            code = await proc.wait()
            how = f"signal {-code}" if code < 0 else f"exit status {code}"
            raise EngineUnavailable(
                f"the {engine} engine could not load {model.name} (runner {how}); {details}",
                engine=engine,
            )
        ready = json.loads(line)
        if ready.get("event") == "error":  # it would not start unconfined, or could not load
            await proc.wait()
            if ready.get("kind") == "unconfined":
                raise sandbox.refusal(ready, engine)
            error = _LOAD_ERRORS.get(ready.get("kind", ""), EngineUnavailable)
            raise error(f"{ready.get('message')} ({details})", engine=engine, model=model.name)
        sandbox.started(proc.pid, ready)
        return cls(proc, engine, ready)

    async def generate(self, job: dict[str, Any], on_delta: OnDelta) -> Outcome:
        """Run one request: ``request`` then ``follow``."""
        return await self.follow(self.request(job), on_delta)

    def request(self, job: dict[str, Any]) -> int:
        """Send a request; its id for ``follow``, ``pause``, ``resume`` and ``cancel``."""
        self._next_rid += 1
        rid = self._next_rid
        self._requests[rid] = _Request()
        if self._reader.done() or not self._send({"op": "generate", "rid": rid, **job}):
            del self._requests[rid]
            raise RunnerGone("the model process had stopped before the request reached it")
        return rid

    async def follow(self, rid: int, on_delta: OnDelta) -> Outcome:
        """Relay a request's deltas until it ends (its result; raises a typed error) or
        is paused (Paused: ``follow`` again after ``resume``).

        ``on_delta(text, tokens)``: new text, and the tokens generated so far."""
        request = self._requests[rid]
        while True:
            event = await request.events.get()
            if event is None:
                del self._requests[rid]
                code = self.exit_code or 0
                how = f"signal {-code}" if code < 0 else f"exit status {code}"
                # Died before a word about this request: it may never have read it.
                failed = RunnerFailed if request.answered else RunnerGone
                raise failed(
                    f"the model process stopped unexpectedly ({how}); "
                    "the next request starts a new one",
                    exit=code,
                )
            request.answered = True
            kind = event["event"]
            if kind == "delta":
                on_delta(event["text"], int(event.get("tokens", 0)))
            elif kind == "paused":
                return Paused(int(event.get("tokens", 0)))
            elif kind == "done":
                del self._requests[rid]
                result: dict[str, Any] = event["result"]
                return result
            elif kind == "error":
                del self._requests[rid]
                error = _ERRORS.get(event.get("kind", ""), RunnerFailed)
                raise error(event["message"], **event.get("data", {}))

    async def _read(self) -> None:
        """Hand each event to its request; at the end, tell every open request."""
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            try:
                event = json.loads(line)
                request = self._requests.get(event.get("rid"))
            except (ValueError, AttributeError):
                continue
            if request is not None:
                request.events.put_nowait(event)
        self.exit_code = await self.proc.wait()
        for request in self._requests.values():
            request.events.put_nowait(None)

    def pause(self, rid: int) -> None:
        """Ask the runner to set the request aside at its next token (see Paused)."""
        self._send({"op": "pause", "rid": rid})

    def resume(self, rid: int) -> bool:
        """Continue a paused request (then ``follow`` it); False if the runner is gone."""
        return self._send({"op": "resume", "rid": rid})

    def cancel(self, rid: int) -> None:
        self._send({"op": "cancel", "rid": rid})

    def _send(self, cmd: dict[str, Any]) -> bool:
        """Write a command; False if it cannot reach the runner (a dead runner's pipe
        fails the write at once, and closes)."""
        assert self.proc.stdin is not None
        if not self.alive:
            return False
        self.proc.stdin.write(json.dumps(cmd).encode() + b"\n")
        return not self.proc.stdin.is_closing()

    @property
    def alive(self) -> bool:
        """Usable for a new request: not exited, not being stopped, not seen to die."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        return (
            self.proc.returncode is None
            and not self.proc.stdin.is_closing()
            and not self.proc.stdout.at_eof()
        )

    async def stop(self, timeout: float = 5.0) -> None:
        if self.proc.returncode is not None:
            return
        assert self.proc.stdin is not None
        self.proc.stdin.close()  # the runner exits when its stdin closes
        try:
            await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            self.proc.send_signal(signal.SIGKILL)
            await self.proc.wait()
