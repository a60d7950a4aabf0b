"""Structured output: what holding an answer to a JSON Schema costs, on each engine.

Through the daemon, for each schema × prompt of tests/daemon/engine/structured_cases.py:
the answer with ``options.format`` (greedy), then the same prompt without it for the same
number of tokens, runs alternated. Prints decode tokens/s with and without the schema
(the runner's own ``timings.tokens_per_s``), their ratio (goal: ≥ 0.9, at most 10%
slower), and the constraint's own time per token (``timings.constraint_ms``: computing
the mask and advancing the matcher). Then, in this process, the parts of one token's
mask cost: llguidance's mask, the matcher's step, and applying the mask to 49,152 logits
(numpy, as the llama.cpp backend does; MLX).

    .venv/bin/python bench/structured.py [--runs 3] [--mlx-cases 11] [--cases 33]

Never fails on timing. On Linux MLX runs on the CPU (mlx[cpu]).
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
from tests.daemon.engine.structured_cases import MAX_TOKENS, SCHEMAS, cases


def chat(client: Client, engine: str, prompt: str, **options: Any) -> dict[str, Any]:
    params = {"messages": [{"role": "user", "content": prompt}], "store": False,
              "options": {"engine": engine, "temperature": 0, **options}}  # fmt: skip
    result: dict[str, Any] = client.call("chat", params)
    return result


def measure(client: Client, engine: str, picked: list[tuple[str, str]], runs: int) -> None:
    client.call("models.load", {"model": "default", "engine": engine})
    chat(client, engine, "Hi", format=SCHEMAS["enum"], max_tokens=MAX_TOKENS)  # the vocabulary
    with_schema: list[float] = []
    without: list[float] = []
    mask_ms, mask_tokens = 0.0, 0
    for _ in range(runs):
        for name, prompt in picked:
            held = chat(client, engine, prompt, format=SCHEMAS[name], max_tokens=MAX_TOKENS)
            n = held["tokens"]["completion"]
            plain = chat(client, engine, prompt, max_tokens=n)
            if n > 2 and plain["tokens"]["completion"] > 2:
                with_schema.append(held["timings"]["tokens_per_s"])
                without.append(plain["timings"]["tokens_per_s"])
            mask_ms += held["timings"]["constraint_ms"]
            mask_tokens += n
    a, b = statistics.median(with_schema), statistics.median(without)
    label = {"llamacpp": "llama.cpp", "mlx": "MLX"}[engine]
    print(f"{label:10}{len(with_schema):>7}{b:>14.1f}{a:>14.1f}{a / b:>9.3f}"
          f"{1000 * mask_ms / mask_tokens:>14.0f}")  # fmt: skip
    client.call("models.unload", {"model": "default"})


def mask_parts(rounds: int = 200) -> None:
    """One token's mask, in this process, on the default model's vocabulary."""
    import numpy as np

    from daemon.engine.gguf import read_gguf
    from daemon.engine.mlx_gguf import gguf_tokenizer
    from daemon.engine.registry import default_model_path
    from daemon.engine.structured import Constraint, tokenizer_from_hf

    text = gguf_tokenizer(read_gguf(default_model_path(), keep_arrays=True))
    vocabulary = tokenizer_from_hf(text.tokenizer, text.eog_ids)
    answer = '{"person": {"name": "Bob Smith", "address": {"city": "Paris", "zip": "75001"}}}'
    tokens = text.encode(answer)
    allowed, advance = [], []
    for _ in range(rounds // len(tokens) + 1):
        constraint = Constraint(vocabulary, SCHEMAS["nested"])
        for token in tokens:
            t0 = time.perf_counter()
            mask = constraint.allowed(vocabulary.vocab_size)
            t1 = time.perf_counter()
            constraint.advance(token)
            allowed.append(t1 - t0)
            advance.append(time.perf_counter() - t1)
    logits = np.random.default_rng(0).normal(size=vocabulary.vocab_size).astype(np.float32)
    t0 = time.perf_counter()
    for _ in range(rounds):
        np.where(mask, logits, -np.inf)
    apply_np = (time.perf_counter() - t0) / rounds
    rows = [("mask (llguidance, into a bool row)", statistics.median(allowed)),
            ("advance the matcher by one token", statistics.median(advance)),
            ("apply to the logits (numpy)", apply_np)]  # fmt: skip
    try:
        import mlx.core as mx

        mlx_logits = mx.array(logits)
        t0 = time.perf_counter()
        for _ in range(rounds):
            mx.eval(mx.where(mx.array(mask), mlx_logits, -mx.inf))
        rows.append(("apply to the logits (MLX)", (time.perf_counter() - t0) / rounds))
    except ImportError:
        pass
    print(f"\nOne token's mask, in-process, 49,152-token vocabulary ({len(tokens)}-token answer,"
          f" median of {len(allowed)})")  # fmt: skip
    for label, seconds in rows:
        print(f"  {label:40}{seconds * 1e6:8.0f} µs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cases", type=int, default=len(cases()), help="llama.cpp cases")
    parser.add_argument("--mlx-cases", type=int, default=11, help="MLX cases (slow on a CPU)")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="hs-", dir="/tmp"))
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
        client = Client.connect(paths.socket, "bench-structured")
        every = cases()
        spread = every[:: max(1, len(every) // max(1, args.mlx_cases))][: args.mlx_cases]
        print("SmolLM2-135M Q4_1, greedy; each case with its schema, then without it for the "
              f"same number of tokens; tokens/s: median of cases × {args.runs} run(s)")  # fmt: skip
        print(f"{'':10}{'cases':>7}{'plain tok/s':>14}{'schema tok/s':>14}{'ratio':>9}"
              f"{'mask µs/tok':>14}")  # fmt: skip
        measure(client, "llamacpp", every[: args.cases], args.runs)
        if args.mlx_cases > 0:
            measure(client, "mlx", spread, args.runs)
        client.close()
    finally:
        daemon.terminate()
        daemon.wait()
        shutil.rmtree(home, ignore_errors=True)
    mask_parts()


if __name__ == "__main__":
    main()
