"""The default model on each engine, through the daemon: tokens/s, time to first token,
and the runner's peak memory, side by side. Also the converted MLX folder.

    .venv/bin/python bench/engines.py [--runs 3] [--tokens 64]

On Linux MLX runs on the CPU (mlx[cpu]); its figures here are a correctness path, not
what a Mac does. Never fails on timing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from daemon.client import Client
from daemon.paths import Paths

PROMPT = [{"role": "user", "content": "Write a long, detailed story about a lighthouse keeper."}]


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def one(client: Client, model: str | None, engine: str, n: int) -> tuple[float, float]:
    first: list[float] = []

    def on_delta(method: str, params: dict[str, Any]) -> None:
        if not first:
            first.append(time.perf_counter())

    t0 = time.perf_counter()
    params = {"messages": PROMPT, "model": model, "store": False,
              "options": {"engine": engine, "temperature": 0, "max_tokens": n}}  # fmt: skip
    result = client.wait(client.send("chat", params), on_delta)
    end = time.perf_counter()
    count = result["tokens"]["completion"]
    return (first[0] - t0) * 1000, (count - 1) / (end - first[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=64)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="he-", dir="/tmp"))
    (home / "config").mkdir()
    (home / "config" / "config.toml").write_text("keep_alive = -1\n")
    env = {**os.environ, "HEARTH_HOME": str(home)}
    daemon = subprocess.Popen([sys.executable, "-m", "daemon", "daemon"], env=env)
    paths = Paths.from_env({"HEARTH_HOME": str(home)})
    try:
        for _ in range(600):
            if paths.socket.exists():
                break
            time.sleep(0.05)
        client = Client.connect(paths.socket, "bench-engines")
        print("converting the default model to an MLX folder…", flush=True)
        mlx_folder = client.call("models.convert", {"model": "default", "to": "mlx"})["name"]
        cases = [("llama.cpp, GGUF", None, "llamacpp"), ("MLX, GGUF", None, "mlx"),
                 ("MLX, converted folder", mlx_folder, "mlx")]  # fmt: skip
        print(f"\nSmolLM2-135M Q4_1, {args.tokens} new tokens, greedy, median of {args.runs}")
        print(f"{'':24}{'tokens/s':>10}{'TTFT ms':>10}{'load s':>8}{'peak RSS MB':>13}")
        for label, model, engine in cases:
            t0 = time.perf_counter()
            client.call("models.load", {"model": model or "default", "engine": engine})
            load_s = time.perf_counter() - t0
            one(client, model, engine, 4)  # warm-up
            rows = [one(client, model, engine, args.tokens) for _ in range(args.runs)]
            runner = next(
                r["pid"] for r in client.call("status")["runners"]
                if r["engine"] == engine and r["model"] == (model or r["model"])
            )  # fmt: skip
            print(f"{label:24}{statistics.median(r[1] for r in rows):10.1f}"
                  f"{statistics.median(r[0] for r in rows):10.1f}{load_s:8.1f}"
                  f"{peak_rss_mb(runner):13.0f}")  # fmt: skip
            client.call("models.unload", {"model": model or "default"})
        client.close()
    finally:
        daemon.terminate()
        daemon.wait()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
