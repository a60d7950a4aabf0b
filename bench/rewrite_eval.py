"""Rewrite quality: every preset over a fixed set of inputs, each output checked automatically.

    .venv/bin/python bench/rewrite_eval.py                 # the default (built-in) model
    .venv/bin/python bench/rewrite_eval.py model.gguf      # any GGUF (llama.cpp)
    .venv/bin/python bench/rewrite_eval.py ./model-folder  # any MLX model folder (MLX)
    .venv/bin/python bench/rewrite_eval.py --limit 5 --json out.json --show 3

The 32 inputs (bench/rewrite_cases.py) are informal messages, typos, long paragraphs,
lists, other languages, and text with code or numbers. Each output is scored by
bench/rewrite_scores.py: not empty, no preamble/quotes/explanation, no refusal, length
within the preset's bounds, the preset's format, proofread similarity, language kept,
numbers and code kept. Greedy decoding, so a run is repeatable. It prints a table per
preset (the share of outputs passing each check) and a total. These are quality
figures, not timings: a busy machine gives the same ones.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from rewrite_cases import CASES, Case
from rewrite_scores import CHECKS, passed, score

from daemon.client import Client
from daemon.errors import DaemonUnavailable
from daemon.paths import Paths

HEADERS = {"nonempty": "nonempty", "clean": "clean", "no_refusal": "no refusal",
           "length": "length", "format": "format", "similar": "similar",
           "language": "language", "facts": "facts"}  # fmt: skip


def start(home: Path) -> tuple[subprocess.Popen[bytes], Client]:
    env = {**os.environ, "HEARTH_HOME": str(home)}
    log = open(home / "daemon.out", "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen([sys.executable, "-m", "daemon", "daemon"], env=env,
                            stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    sock = Paths.from_env({"HEARTH_HOME": str(home)}).socket
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the daemon exited: {(home / 'daemon.out').read_text()}")
        try:
            return proc, Client.connect(sock, "bench-rewrite")
        except DaemonUnavailable:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the daemon did not start")


def max_tokens(text: str) -> int:
    """Room for a rewrite a third longer than the input (about 4 characters a token): past
    that the length check fails anyway, so more tokens would only cost time."""
    return max(48, min(1024, len(text) // 3 + 32))


def run(client: Client, model: str | None, engine: str | None, presets: list[str],
        cases: list[Case], save: Any = None) -> list[dict[str, Any]]:  # fmt: skip
    """Every preset on each input in turn (so a stopped run covers every preset), calling
    ``save(rows)`` after each output."""
    rows: list[dict[str, Any]] = []
    total = len(presets) * len(cases)
    for i, (case, preset) in enumerate(((c, p) for c in cases for p in presets), 1):
        options: dict[str, Any] = {"temperature": 0, "max_tokens": max_tokens(case.text)}
        if engine:
            options["engine"] = engine
        params = {"text": case.text, "preset": preset, "model": model, "options": options}
        started = time.monotonic()
        result = client.call("rewrite", params)
        checks = score(preset, case.text, result["text"], case.lang)
        rows.append({"preset": preset, "case": case.id, "kind": case.kind, "lang": case.lang,
                     "input": case.text, "output": result["text"], "checks": checks,
                     "ok": passed(checks), "finish": result["finish_reason"],
                     "seconds": round(time.monotonic() - started, 2)})  # fmt: skip
        if save is not None:
            save(rows)
        print(f"\r{i}/{total} {preset:<13} {case.id:<14}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return rows


def rate(rows: list[dict[str, Any]], check: str) -> str:
    values = [r["checks"][check] for r in rows if r["checks"][check] is not None]
    return f"{100 * sum(values) / len(values):.0f}%" if values else "-"


def table(title: str, groups: dict[str, list[dict[str, Any]]]) -> None:
    print(f"\n{title}")
    cols = "".join(f"{HEADERS[c]:>11}" for c in CHECKS)
    print(f"{'':<14}{'n':>4}{'all pass':>10}{cols}")
    for name, rows in groups.items():
        ok = f"{100 * sum(r['ok'] for r in rows) / len(rows):.0f}%"
        print(f"{name:<14}{len(rows):>4}{ok:>10}" + "".join(f"{rate(rows, c):>11}" for c in CHECKS))


def report(info: dict[str, Any], engine: str, rows: list[dict[str, Any]], show: int) -> None:
    presets = list(dict.fromkeys(r["preset"] for r in rows))
    inputs = len({r["case"] for r in rows})
    print(f"Model: {info['name']} ({info['format']}, {info['quantization']}, "
          f"{info['size'] / 1e6:.0f} MB) on {engine}; {inputs} inputs x "
          f"{len(presets)} presets, greedy.")  # fmt: skip
    by_preset = {p: [r for r in rows if r["preset"] == p] for p in presets}
    table("Per preset (share of outputs passing each check; - = not applicable)", by_preset)
    kinds = list(dict.fromkeys(r["kind"] for r in rows))
    table("Per kind of input", {k: [r for r in rows if r["kind"] == k] for k in kinds})
    table("Total", {"all": rows})
    for preset, group in by_preset.items():
        for row in [r for r in group if not r["ok"]][:show]:
            failed = [c for c, v in row["checks"].items() if v is False]
            print(f"\n[{preset} / {row['case']}] failed {', '.join(failed)}:\n"
                  f"{row['output'][:400]}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", help="a .gguf file or an MLX model folder "
                        "(default: Hearth's built-in model)")  # fmt: skip
    parser.add_argument("--engine", choices=["llamacpp", "mlx"],
                        help="default: llama.cpp for GGUF, MLX for a folder")  # fmt: skip
    parser.add_argument("--limit", type=int, help="only the first N inputs")
    parser.add_argument("--preset", action="append", help="only this preset (repeatable)")
    parser.add_argument("--json", type=Path, help="write every input, output and check here")
    parser.add_argument("--show", type=int, default=0, help="print N failing outputs per preset")
    parser.add_argument(
        "--rescore", type=Path, metavar="JSON", help="score saved outputs (--json) again"
    )
    args = parser.parse_args()
    if args.rescore:
        saved = json.loads(args.rescore.read_text())
        langs = {c.id: c.lang for c in CASES}
        for row in saved["rows"]:
            row["checks"] = score(row["preset"], row["input"], row["output"], langs[row["case"]])
            row["ok"] = passed(row["checks"])
        report(saved["model"], saved["engine"], saved["rows"], args.show)
        return
    # a kill still stops the daemon and removes its home (the finally below)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    home = Path(tempfile.mkdtemp(prefix="hr-", dir="/tmp"))
    (home / "config").mkdir()
    (home / "config" / "config.toml").write_text("keep_alive = -1\n")
    proc, client = start(home)
    try:
        name = None
        if args.model:
            print(f"importing {args.model}…", file=sys.stderr)
            name = client.call("models.import", {"path": str(Path(args.model).resolve())})["name"]
        info = next(m for m in client.call("models.list")["models"]
                    if m["name"] == (name or client.call("models.list")["default"]))  # fmt: skip
        presets = args.preset or [p["name"] for p in client.call("rewrite.presets")["presets"]]
        cases = CASES[: args.limit] if args.limit else CASES
        engine = args.engine or info["engine"] or "mlx"

        def save(rows: list[dict[str, Any]]) -> None:
            if args.json:  # after every output: a stopped run can still be scored
                saved = {"model": info, "engine": engine, "rows": rows}
                args.json.write_text(json.dumps(saved, indent=1, ensure_ascii=False))

        rows = run(client, name, args.engine, presets, cases, save)
        report(info, engine, rows, args.show)
    finally:
        client.close()
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
