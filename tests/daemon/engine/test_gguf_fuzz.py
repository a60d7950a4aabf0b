"""A seeded fuzz run of the GGUF reader against ggml's own parser (bench/gguf_fuzz.py,
shortened; the long run and its figures are in docs/benchmarks.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
MUTANTS = 800
MAX_SECONDS = 2.0  # per file; a parse takes a few ms
MAX_MB = 16.0  # traced memory per file; a parse takes about 1 MB


def test_mutants_get_invalid_model_only_in_bounded_time_and_memory_and_none_ggml_refuses() -> None:
    out = subprocess.run(
        [sys.executable, "bench/gguf_fuzz.py", "--mutants", str(MUTANTS), "--seed", "7",
         "--max-seconds", str(MAX_SECONDS), "--max-mb", str(MAX_MB), "--cap-mb", "2048",
         "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout)
    assert report["failures"] == [], json.dumps(report["failures"][:5], indent=1)
    assert report["files"] == MUTANTS
    assert report["max_seconds"] < MAX_SECONDS and report["max_mb"] < MAX_MB
    # The run means something: ggml refuses most mutants, for many different reasons,
    # and the files both parsers accept are still accepted.
    assert report["ggml"].get("refused", 0) > MUTANTS // 2
    assert len(report["reasons"]) >= 10
    assert report["both_accepted"] >= 20
