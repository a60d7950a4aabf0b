"""The default model on each engine, through the daemon: tokens/s, time to first token,
and the runner's peak memory, side by side. Also the converted MLX folder, and Hearth on
MLX against its peers: mlx-lm in-process (raw) and `mlx_lm.server`.

    .venv/bin/python bench/engines.py [--runs 3] [--tokens 64] [--no-server]

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

from bench.throughput import free_port, rates, start_http_server, stream_sse
from daemon.client import Client
from daemon.paths import Paths

PROMPT = [{"role": "user", "content": "Write a long, detailed story about a lighthouse keeper."}]
Row = tuple[float, float]  # (time to first token ms, decode tokens/s after the first)


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def one(client: Client, model: str | None, engine: str, n: int) -> Row:
    first: list[float] = []

    def on_delta(method: str, params: dict[str, Any]) -> None:
        if not first:
            first.append(time.perf_counter())

    t0 = time.perf_counter()
    params = {"messages": PROMPT, "model": model, "store": False,
              "options": {"engine": engine, "temperature": 0, "max_tokens": n}}  # fmt: skip
    result = client.wait(client.send("chat", params), on_delta)
    return rates(t0, first[0], time.perf_counter(), result["tokens"]["completion"])


class RawMLX:
    """mlx-lm in this process, the way its own examples call it: no socket, no runner."""

    def __init__(self, folder: str) -> None:
        from mlx_lm import load

        self.model, self.tokenizer = load(folder)
        self.prompt = self.tokenizer.apply_chat_template(PROMPT, add_generation_prompt=True)

    def run(self, n: int) -> Row:
        from mlx_lm import stream_generate
        from mlx_lm.sample_utils import make_sampler

        t0 = time.perf_counter()
        first, count = 0.0, 0
        for _ in stream_generate(
            self.model, self.tokenizer, self.prompt, max_tokens=n, sampler=make_sampler(temp=0.0)
        ):
            count += 1
            if count == 1:
                first = time.perf_counter()
        return rates(t0, first, time.perf_counter(), count)


def start_mlx_server(folder: str) -> tuple[subprocess.Popen[bytes], int] | None:
    port = free_port()
    args = [sys.executable, "-m", "mlx_lm", "server", "--model", folder, "--port", str(port),
            "--log-level", "ERROR"]  # fmt: skip
    proc = start_http_server(args, port, "mlx_lm.server")
    return (proc, port) if proc else None


def run_server(port: int, n: int) -> Row:
    body = {"messages": PROMPT, "max_tokens": n, "temperature": 0, "stream": True}
    url = f"http://127.0.0.1:{port}/v1/chat/completions"

    def is_token(event: dict[str, Any]) -> bool:
        choices = event.get("choices") or [{}]
        return bool(choices[0].get("delta", {}).get("content"))

    ttft, tps, _ = stream_sse(url, body, is_token)
    return ttft, tps


def med(rows: list[Row], i: int) -> float:
    return statistics.median(r[i] for r in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--no-server", action="store_true", help="skip mlx_lm.server")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="he-", dir="/tmp"))
    (home / "config").mkdir()
    (home / "config" / "config.toml").write_text("keep_alive = -1\n")
    env = {**os.environ, "HEARTH_HOME": str(home)}
    daemon = subprocess.Popen([sys.executable, "-m", "daemon", "daemon"], env=env)
    paths = Paths.from_env({"HEARTH_HOME": str(home)})
    server = None
    try:
        for _ in range(600):
            if paths.socket.exists():
                break
            time.sleep(0.05)
        client = Client.connect(paths.socket, "bench-engines")
        print("converting the default model to an MLX folder…", flush=True)
        converted = client.call("models.convert", {"model": "default", "to": "mlx"})
        folder = converted["name"]
        cases = [("llama.cpp, GGUF", None, "llamacpp"), ("MLX, GGUF", None, "mlx"),
                 ("MLX, converted folder", folder, "mlx")]  # fmt: skip
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
            print(f"{label:24}{med(rows, 1):10.1f}{med(rows, 0):10.1f}{load_s:8.1f}"
                  f"{peak_rss_mb(runner):13.0f}")  # fmt: skip
            if model is None or engine != "mlx":
                client.call("models.unload", {"model": model or "default"})

        # Hearth on MLX against its peers, on the same converted folder, runs alternated.
        print(f"\nMLX peers, converted folder, {args.tokens} new tokens, median of {args.runs}")
        raw = RawMLX(converted["path"])
        raw.run(4)  # warm-up
        server = None if args.no_server else start_mlx_server(converted["path"])
        if server:
            run_server(server[1], 4)
        results: dict[str, list[Row]] = {"hearth": [], "raw": [], "server": []}
        for _ in range(args.runs):
            results["raw"].append(raw.run(args.tokens))
            results["hearth"].append(one(client, folder, "mlx", args.tokens))
            if server:
                results["server"].append(run_server(server[1], args.tokens))
        labels = {"raw": "mlx-lm, in-process (raw)", "hearth": "Hearth, over the socket",
                  "server": "mlx_lm.server (HTTP)"}  # fmt: skip
        print(f"{'':28}{'tokens/s':>10}{'TTFT ms':>10}")
        for key, rows in results.items():
            if rows:
                print(f"{labels[key]:28}{med(rows, 1):10.1f}{med(rows, 0):10.1f}")
        raw_tps = med(results["raw"], 1)
        print(f"Hearth / raw mlx-lm tokens/s: {med(results['hearth'], 1) / raw_tps:.3f}")
        if results["server"]:
            ratio = med(results["hearth"], 1) / med(results["server"], 1)
            print(f"Hearth / mlx_lm.server tokens/s: {ratio:.3f}")
        client.close()
    finally:
        if server:
            server[0].terminate()
            server[0].wait()
        daemon.terminate()
        daemon.wait()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
