"""The runner: a subprocess that owns one loaded model and generates for the daemon.

The daemon never loads a model itself, so an engine crash or a malformed model
cannot take it down. The runner speaks JSON lines: commands on stdin, events on the
original stdout (fd 1 is pointed at stderr so library chatter cannot corrupt them).

    in:  {"op": "generate", "rid": 7, "messages": [...], "max_tokens": 128, "stop": [...],
          "temperature": 0.2, "top_p": 0.9, "seed": null, "repeat_penalty": 1.1,
          "repeat_last_n": 64, "loop_guard": true, "priority": "interactive",
          "bound": {"text": "...", "ratio": 1.5, "extra": 32},   (a rewrite's length bound)
          "format": {JSON Schema}}                                (engine/structured.py)
         {"op": "cancel", "rid": 7}
         {"op": "pause", "rid": 7}    {"op": "resume", "rid": 7}
    out: {"event": "ready", "engine": "llamacpp", "context_length": 4096, "pid": 123,
          "isolation": {"netns": true, "seccomp": true, "confined": true, ...}}
         {"event": "error", "kind": "unconfined", "message": "..."}   (instead of ready)
         {"event": "error", "kind": "invalid_model", "message": "..."}   (could not load; also
          engine_unavailable, with the engine's own words)
         {"event": "delta", "rid": 7, "text": "Hel", "tokens": 1}
         {"event": "paused", "rid": 7, "tokens": 212}
         {"event": "done", "rid": 7, "result": {...}}
         {"event": "error", "rid": 7, "kind": "context_too_long", "message": "...",
          "data": {"tokens": 5000, "context": 4096, "cut": 968}}

One request computes at a time; cancel and pause are read by a thread while tokens are
produced, so they take effect within one token. A paused request stops between two
tokens and is set aside whole (engine/generation.py: its KV cache through
Backend.suspend, its sampler, its answer so far) until `resume` (its deltas then go on)
or `cancel` (it ends at once, `finish_reason: "cancelled"`, with its text so far, even
while another request computes). Each request computes with the CPUs free at the
time, re-checked as it goes (engine/cpu.py); a ``background`` one runs on a thread of
its own at nice 19, so the user's own programs come first.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from queue import Queue
from typing import IO, TYPE_CHECKING, Any

from daemon.engine.answer import AnswerText
from daemon.engine.backend import Backend, Sampling
from daemon.engine.context import ContextWindow
from daemon.engine.cpu import BACKGROUND_NICE, CpuShare, lower_this_thread
from daemon.engine.generation import Generation
from daemon.engine.loops import LoopGuard
from daemon.engine.prompt import render
from daemon.engine.structured import Constraint
from daemon.errors import ContextTooLong, HearthError

if TYPE_CHECKING:
    from llguidance import LLTokenizer

DELTA_EVERY_S = 0.02  # at most ~50 deltas a second: smooth to read, cheap to carry


def load_backend(engine: str, path: Path, n_ctx: int) -> Backend:
    if engine == "llamacpp":
        from daemon.engine.llamacpp import LlamaCppBackend

        return LlamaCppBackend(path, n_ctx=n_ctx)
    if engine == "mlx":
        from daemon.engine import mlx

        return mlx.load(path, n_ctx=n_ctx)
    raise ValueError(f"unknown engine {engine!r}")


class Runner:
    def __init__(
        self, backend: Backend, out: IO[str], cpu: CpuShare | None = None,
        nice: int = BACKGROUND_NICE,
    ) -> None:  # fmt: skip
        self.backend = backend
        self.out = out
        # Set by the command reader while a request computes, read at each token boundary.
        self.cancelled: set[int] = set()
        self.pausing: set[int] = set()
        self.paused: dict[int, Generation] = {}  # set aside; popped by resume or cancel
        self.lock = threading.Lock()
        self.window = ContextWindow()  # which turns fit; remembers its last cut
        self.cpu = cpu
        self.threads = 0  # what the backend computes with now (0: not set yet)
        self._background: ThreadPoolExecutor | None = None
        self._nice = nice  # the background thread's
        self._grammar_tokenizer: LLTokenizer | None = None  # built by the first format

    def grammar_tokenizer(self) -> LLTokenizer:
        if self._grammar_tokenizer is None:
            self._grammar_tokenizer = self.backend.grammar_tokenizer()
        return self._grammar_tokenizer

    def fit_threads(self) -> None:
        """Compute with the CPUs free now. Engines whose thread count can change between
        tokens have ``set_threads`` (llama.cpp); MLX on a CPU computes on one thread."""
        set_threads = getattr(self.backend, "set_threads", None)
        if self.cpu is None or set_threads is None:
            return
        n = self.cpu.threads()
        if n != self.threads:
            set_threads(n)
            self.threads = n

    def serve(self, cmd: dict[str, Any]) -> None:
        """One command from the queue: a generation to start or to resume. A background
        one computes on the background thread; either way it is waited for (until it
        ends or is paused), so one generation computes at a time."""
        rid = cmd.get("rid")
        if cmd.get("op") == "resume":
            gen = self.paused.pop(int(rid or 0), None)
            if gen is None:  # cancelled while paused: it has ended already
                return
            self._on_thread(gen.priority, rid, lambda: self.run(gen))
        else:
            self._on_thread(cmd.get("priority"), rid, lambda: self.generate(cmd))

    def _on_thread(self, priority: Any, rid: Any, work: Callable[[], None]) -> None:
        if priority == "background" and not getattr(self.backend, "thread_bound", False):
            if self._background is None:
                self._background = ThreadPoolExecutor(
                    1, "background", lower_this_thread, (self._nice,)
                )
            self._background.submit(self._report, rid, work).result()
        else:
            self._report(rid, work)

    def _report(self, rid: Any, work: Callable[[], None]) -> None:
        try:
            work()
        except HearthError as exc:  # a typed refusal: a format the vocabulary cannot hold…
            self.cancelled.discard(int(rid or 0))
            self.emit({"event": "error", "rid": rid, "kind": exc.kind,
                       "message": exc.message, "data": exc.data})  # fmt: skip
        except Exception as exc:  # report, keep serving: one bad request is not a crash
            self.emit(
                {"event": "error", "rid": rid, "kind": "runner_failed",
                 "message": f"{type(exc).__name__}: {exc}"}
            )  # fmt: skip

    def emit(self, event: dict[str, Any]) -> None:
        with self.lock:
            self.out.write(json.dumps(event, ensure_ascii=False) + "\n")
            self.out.flush()

    def generate(self, cmd: dict[str, Any]) -> None:
        rid = int(cmd["rid"])
        start = time.perf_counter()
        n_ctx = self.backend.context_length()
        max_tokens = asked = self._max_tokens(cmd, n_ctx)
        try:
            fitted = self.window.fit(
                cmd["messages"], self._tokens_of, n_ctx, reserve=min(max_tokens, n_ctx // 4)
            )
        except ContextTooLong as exc:
            self.emit({"event": "error", "rid": rid, "kind": exc.kind, "message": exc.message,
                       "data": exc.data})  # fmt: skip
            return
        prompt = fitted.tokens
        sampling = Sampling(
            temperature=float(cmd.get("temperature", Sampling.temperature)),
            top_p=float(cmd.get("top_p", Sampling.top_p)),
            seed=cmd.get("seed"),
            repeat_penalty=float(cmd.get("repeat_penalty", Sampling.repeat_penalty)),
            repeat_last_n=int(cmd.get("repeat_last_n", Sampling.repeat_last_n)),
        )
        # Held to a JSON Schema, the answer ends where its JSON does (no stop strings); the
        # loop guard still watches, and a loop ends it as incomplete (see Constraint.value).
        constraint = None
        if cmd.get("format") is not None:
            constraint = Constraint(self.grammar_tokenizer(), cmd["format"])
        answer = AnswerText(
            [] if constraint else cmd.get("stop") or [],
            LoopGuard() if cmd.get("loop_guard", True) else None,
        )
        gen = Generation(
            rid=rid,
            priority=str(cmd.get("priority", "interactive")),
            prompt=prompt,
            context=fitted.report(n_ctx),
            max_tokens=min(max_tokens, n_ctx - len(prompt)),
            asked=asked,
            answer=answer,
            tokens=(
                self.backend.generate(prompt, sampling, constraint.allowed)
                if constraint
                else self.backend.generate(prompt, sampling)
            ),
            constraint=constraint,
            start=start,
        )
        self.run(gen)

    def run(self, gen: Generation) -> None:
        """Step a generation until it ends, or until a pause asks it to stop between two
        tokens: then its state is set aside (``paused``) for a later resume."""
        if gen.suspended is not None:
            self.backend.resume(gen.suspended)
            gen.suspended = None
            gen.paused_s += time.perf_counter() - gen.paused_at
        self.fit_threads()
        finish, rid, answer, constraint = "stop", gen.rid, gen.answer, gen.constraint
        for token in gen.tokens:
            now = time.perf_counter()
            if gen.first is None:
                gen.first = now
                gen.reused = int(getattr(self.backend, "last_reused_tokens", 0))
            gen.count += 1
            self.fit_threads()  # another program may have started or stopped
            gen.pending += answer.feed(token)
            closed = False
            if constraint:
                constraint.advance(token.id)
                closed = constraint.complete  # the JSON closed and nothing may follow it
            # Fast engines make a token every few ms: one delta per DELTA_EVERY_S carries
            # them all, sparing the cores they share a line's work per token.
            if gen.pending and (now - gen.sent >= DELTA_EVERY_S or answer.finish or closed):
                self._delta(gen, gen.take_pending(now))
            if answer.finish:
                finish = answer.finish
                break
            if closed:
                break
            if rid in self.cancelled:
                finish = "cancelled"
                break
            if gen.count >= gen.max_tokens:
                finish = "length"
                break
            if rid in self.pausing:
                self._pause(gen)
                return
        self.finish(gen, finish)

    def _pause(self, gen: Generation) -> None:
        """Set a generation aside: what it released goes out first, so the deltas sent
        are the text so far; what the answer holds back waits in it."""
        now = time.perf_counter()
        if gen.pending:
            self._delta(gen, gen.take_pending(now))
        gen.suspended = self.backend.suspend()
        gen.paused_at, gen.pauses = now, gen.pauses + 1
        self.pausing.discard(gen.rid)
        self.paused[gen.rid] = gen  # before the event: a cancel that follows it finds it
        self.emit({"event": "paused", "rid": gen.rid, "tokens": gen.count})

    def finish(self, gen: Generation, finish: str) -> None:
        tail = gen.pending + gen.answer.flush()
        if tail:
            self._delta(gen, tail)
        self.cancelled.discard(gen.rid)
        self.pausing.discard(gen.rid)
        self.emit(
            {"event": "done", "rid": gen.rid, "result": gen.result(finish, self.threads or None)}
        )

    def cancel(self, rid: int) -> None:
        """From the command reader: a computing request stops at its next token; a paused
        one ends now, with its text so far (its saved state is dropped)."""
        self.cancelled.add(rid)
        gen = self.paused.pop(rid, None)
        if gen is not None:  # nothing computes it: end it here, whatever else runs
            gen.paused_s += time.perf_counter() - gen.paused_at
            gen.suspended = None
            self.finish(gen, "cancelled")

    def _delta(self, gen: Generation, text: str) -> None:
        self.emit({"event": "delta", "rid": gen.rid, "text": text, "tokens": gen.count})

    def _tokens_of(self, messages: list[dict[str, str]]) -> list[int]:
        text = render(self.backend.chat_template(), messages, self.backend.special_tokens())
        return self.backend.tokenize(text)

    def _max_tokens(self, cmd: dict[str, Any], n_ctx: int) -> int:
        """The request's max_tokens, or the bound that follows a rewrite's input."""
        limit = int(cmd.get("max_tokens") or n_ctx)
        bound = cmd.get("bound")
        if bound:  # {"text", "ratio", "extra"}: a rewrite no longer than its input warrants
            size = len(self.backend.tokenize(bound["text"]))
            limit = min(limit, math.ceil(float(bound["ratio"]) * size) + int(bound["extra"]))
        return max(1, limit)


def _read_commands(runner: Runner, jobs: Queue[dict[str, Any] | None]) -> None:
    """Cancel and pause take effect while a request computes; the rest queue up."""
    for line in sys.stdin:
        try:
            cmd = json.loads(line)
        except json.JSONDecodeError:
            continue
        op = cmd.get("op")
        if op == "cancel":
            runner.cancel(int(cmd["rid"]))
        elif op == "pause":
            runner.pausing.add(int(cmd["rid"]))
        else:
            jobs.put(cmd)
    jobs.put(None)  # the daemon closed our stdin: exit


def _load(engine: str, model: Path, n_ctx: int, out: IO[str]) -> tuple[Backend, Any] | None:
    """Load the model, or tell the daemon why not: a typed error event, then None.

    Returns the backend and what must live as long as it (llama.cpp's log hooks).

    The traceback goes to the runner log; for llama.cpp, so do its error lines and the
    message of an abort (which would otherwise go to /dev/null, see llamacpp_log)."""

    def report(kind: str, message: str) -> None:
        out.write(json.dumps({"event": "error", "kind": kind, "message": message}) + "\n")
        out.flush()

    diagnostics = None
    if engine == "llamacpp":
        from daemon.engine.llamacpp_log import LlamaLog

        diagnostics = LlamaLog(
            sys.stderr.fileno(),
            lambda text: report(
                "engine_unavailable", f"llama.cpp aborted loading {model.name}: {text}"
            ),
        )
    try:
        backend = load_backend(engine, model, n_ctx)
    except Exception as exc:
        print(f"runner {os.getpid()}: {engine} could not load {model}", file=sys.stderr)
        traceback.print_exc()
        if isinstance(exc, HearthError):
            report(exc.kind, exc.message)
        else:  # the engine's own error: said with llama.cpp's words when it logged some
            cause = (diagnostics.cause() if diagnostics else "") or f"{type(exc).__name__}: {exc}"
            report(
                "engine_unavailable", f"the {engine} engine could not load {model.name}: {cause}"
            )
        return None
    if diagnostics is not None:
        diagnostics.on_abort = None  # from now on events carry request ids: log only
    return backend, diagnostics


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Hearth model runner (started by the daemon)")
    parser.add_argument("engine")
    parser.add_argument("model", type=Path)
    parser.add_argument("--n-ctx", type=int, default=4096)
    parser.add_argument("--report-fd", type=int, help="where socket refusals are reported")
    parser.add_argument("--allow-unconfined", action="store_true", help="run even unconfined")
    parser.add_argument(
        "--background-nice", type=int, default=BACKGROUND_NICE, choices=range(20),
        help="the nice value background requests compute at (Linux)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # anything printed by an engine goes to the log, not the protocol
    from daemon.egress.guard import install, report_to
    from daemon.engine.sandbox import UNCONFINED, confine_runner

    isolation = confine_runner()  # before any model code runs
    if not isolation.confined and not args.allow_unconfined:
        out.write(json.dumps({"event": "error", "kind": "unconfined", "message": UNCONFINED}))
        out.write("\n")
        out.flush()
        return 78  # EX_CONFIG
    reports = sys.stderr if args.report_fd is None else os.fdopen(args.report_fd, "w")
    install(report_to(reports)).forbid_all = True  # refusals go to the daemon's audit log
    cpu = CpuShare().start()  # sampling while the model loads: a first choice is ready
    loaded = _load(args.engine, args.model, args.n_ctx, out)
    if loaded is None:
        return 1
    backend, _hooks = loaded
    runner = Runner(backend, out, cpu, args.background_nice)
    runner.emit(
        {
            "event": "ready",
            "engine": backend.name,
            "context_length": backend.context_length(),
            "pid": os.getpid(),
            "isolation": isolation.to_dict(),
        }
    )
    jobs: Queue[dict[str, Any] | None] = Queue()
    threading.Thread(target=_read_commands, args=(runner, jobs), daemon=True).start()
    while (cmd := jobs.get()) is not None:
        runner.serve(cmd)
    backend.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
