"""Answers that end well: how the repeat penalty and the loop guard change what comes out.

Through the real daemon (so the runner, its loop guard and the bounds are the ones users
get), for each repeat penalty: prompts small models tend to loop on, greedy and sampled
(temperature 0.2, seeded). The penalty is measured with the guard off and a 400-token
limit, so a loop shows as an answer that hits the limit or repeats a line over 3 times;
then the defaults (penalty and guard on) for the finish reasons. A proofread of text
that is already correct measures what the penalty costs in faithfulness (the share of
the input's words kept, in order). Never fails on quality or timing: it prints figures.

    .venv/bin/python bench/answers.py [--penalties 1.0 1.1 1.2] [--seeds 2] [--model NAME]
                                      [--import PATH.gguf] [--engine llamacpp|mlx]
"""

from __future__ import annotations

import argparse
import difflib
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.throughput import start_hearth
from daemon.client import Client
from daemon.paths import Paths

CHATS = [
    "Write a short, polite email asking my landlord to fix the heating.",
    "List ten tips for sleeping better.",
    "Write a Python function that checks whether a number is prime.",
    "Write a cover letter for a job as a librarian.",
    "Explain how a bicycle works.",
]
NOTE = ("professional", "hey can u send me the report by tmrw thx")
CORRECT = (
    "The meeting on Thursday has been moved to the small room on the second floor. "
    "Please bring the quarterly figures and the notes from last week, and tell Anna "
    "that the budget review will start at ten instead of nine."
)


def max_line_repeats(text: str) -> int:
    lines = Counter(line.strip() for line in text.splitlines() if line.strip())
    return max(lines.values(), default=0)


def kept_words(source: str, output: str) -> float:
    """Share of the source's words found, in order, in the output."""
    a, b = source.split(), output.split()
    matched = sum(block.size for block in difflib.SequenceMatcher(a=a, b=b).get_matching_blocks())
    return matched / len(a)


def sampled(seed: int | None, engine: str) -> dict[str, Any]:
    """Greedy (seed None) or the default temperature with a seed, on ``engine``."""
    temperature = {"temperature": 0} if seed is None else {"temperature": 0.2, "seed": seed}
    return {**temperature, "engine": engine}


def run(client: Client, method: str, params: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = client.call(method, params)
    return result


def ask(client: Client, base: dict[str, Any], prompt: str, options: dict[str, Any]) -> Any:
    messages = [{"role": "user", "content": prompt}]
    return run(client, "chat", {**base, "store": False, "options": options, "messages": messages})


def measure(
    client: Client, base: dict[str, Any], penalty: float, seeds: list[int | None], engine: str
) -> None:
    runaway, lengths, rows = 0, [], 0
    for prompt in CHATS:
        for seed in seeds:
            options = {**sampled(seed, engine), "repeat_penalty": penalty, "loop_guard": False,
                       "max_tokens": 400}  # fmt: skip
            result = ask(client, base, prompt, options)
            rows += 1
            lengths.append(result["tokens"]["completion"])
            runaway += result["finish_reason"] == "length" or max_line_repeats(result["text"]) > 3
    faithful = []
    for seed in seeds:
        options = {**sampled(seed, engine), "repeat_penalty": penalty}
        result = run(client, "rewrite", {**base, "text": CORRECT, "preset": "proofread",
                                         "options": options})  # fmt: skip
        faithful.append(kept_words(CORRECT, result["text"]))
    print(f"{penalty:>8.2f} {runaway:>5}/{rows:<3} {statistics.median(lengths):>10.0f} "
          f"{statistics.mean(faithful):>14.3f}")  # fmt: skip


def defaults(client: Client, base: dict[str, Any], seeds: list[int | None], engine: str) -> None:
    finishes: Counter[str] = Counter()
    worst, tokens = 0, []
    for prompt in CHATS:
        for seed in seeds:
            result = ask(client, base, prompt, sampled(seed, engine))
            finishes[result["finish_reason"]] += 1
            worst = max(worst, max_line_repeats(result["text"]))
            tokens.append(result["tokens"]["completion"])
    for seed in seeds:
        params = {**base, "text": NOTE[1], "preset": NOTE[0], "options": sampled(seed, engine)}
        result = run(client, "rewrite", params)
        finishes[f"rewrite {result['finish_reason']}"] += 1
        tokens.append(result["tokens"]["completion"])
    print(
        f"finish reasons: {dict(finishes)}; most repeated line: {worst}; "
        f"tokens median {statistics.median(tokens):.0f}, max {max(tokens)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--penalties", type=float, nargs="+", default=[1.0, 1.05, 1.1, 1.2])
    parser.add_argument("--seeds", type=int, default=2, help="sampled runs per prompt (+ greedy)")
    parser.add_argument("--model", help="a model name from models.list (default: built-in)")
    parser.add_argument("--import", dest="gguf", type=Path, help="import this GGUF and use it")
    parser.add_argument("--engine", default="llamacpp", choices=["llamacpp", "mlx"])
    args = parser.parse_args()
    seeds: list[int | None] = [None, *range(1, args.seeds + 1)]
    home = Path(tempfile.mkdtemp(prefix="hb-", dir="/tmp"))
    daemon = start_hearth(home)
    started = time.monotonic()
    try:
        client = Client.connect(Paths.from_env({"HEARTH_HOME": str(home)}).socket, "bench")
        model = args.model
        if args.gguf:
            model = client.call("models.import", {"path": str(args.gguf)})["name"]
        base: dict[str, Any] = {"model": model}
        print(f"model {model or 'default'} on {args.engine}; {len(CHATS)} chats x "
              f"{len(seeds)} runs (greedy + {args.seeds} seeded at temperature 0.2)")  # fmt: skip
        print("\nguard off, 400-token limit:")
        print(f"{'penalty':>8} {'runaway':>9} {'median tok':>10} {'proofread kept':>14}")
        for penalty in args.penalties:
            measure(client, base, penalty, seeds, args.engine)
        print("\ndefaults (config.toml's penalty, the guard, chat max_tokens, rewrite bounds):")
        defaults(client, base, seeds, args.engine)
        client.close()
    finally:
        daemon.terminate()
        daemon.wait()
        shutil.rmtree(home, ignore_errors=True)
    print(f"\n({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
