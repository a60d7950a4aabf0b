"""ggml's own GGUF parser as a second opinion on a file: `gguf_init_from_file`.

llama-cpp-python ships libggml-base; its `gguf_init_from_file` is the parser llama.cpp
runs on every model. We call it through ctypes in a worker process, so a crash in
ggml costs a worker, not the test: `GGMLParser.verdict(path)` is "accepted",
"refused" (with ggml's last error line), "crashed" or "hung".

    python -m tests.daemon.engine.ggml_oracle FILE...   # ggml's verdict on each file
"""

from __future__ import annotations

import ctypes
import json
import os
import select
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

HUNG_AFTER_S = 30.0


def library() -> Path:
    """libggml-base as llama-cpp-python installed it (Linux .so, macOS .dylib, Windows .dll)."""
    import llama_cpp

    folder = Path(llama_cpp.__file__).parent / "lib"
    for name in ("libggml-base.so", "libggml-base.dylib", "ggml-base.dll"):
        if (folder / name).exists():
            return folder / name
    raise FileNotFoundError(f"no libggml-base in {folder}: is llama-cpp-python installed?")


@dataclass(frozen=True)
class Verdict:
    outcome: str  # accepted | refused | crashed | hung
    why: str = ""

    @property
    def accepted(self) -> bool:
        return self.outcome == "accepted"


class GGMLParser:
    """A worker process that runs gguf_init_from_file on the paths it is sent."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[str] | None = None

    def _start(self) -> subprocess.Popen[str]:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tests.daemon.engine.ggml_oracle", "--serve"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                text=True, cwd=Path(__file__).resolve().parents[3],
            )  # fmt: skip
        return self.proc

    def verdict(self, path: Path) -> Verdict:
        proc = self._start()
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(str(path) + "\n")
            proc.stdin.flush()
        except BrokenPipeError:
            return self._dead(proc)
        ready, _, _ = select.select([proc.stdout], [], [], HUNG_AFTER_S)
        if not ready:
            proc.kill()
            proc.wait()
            return Verdict("hung")
        line = proc.stdout.readline()
        if not line:
            return self._dead(proc)
        answer = json.loads(line)
        return Verdict("accepted" if answer["ok"] else "refused", answer["why"])

    @staticmethod
    def _dead(proc: subprocess.Popen[str]) -> Verdict:
        code = proc.wait()
        return Verdict("crashed", f"signal {-code}" if code < 0 else f"exit status {code}")

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> GGMLParser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Params(ctypes.Structure):
    _fields_ = [("no_alloc", ctypes.c_bool), ("ctx", ctypes.c_void_p)]


_LOG = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)


def serve() -> None:
    """Worker: one path per line in, one JSON verdict per line out."""
    lib = ctypes.CDLL(str(library()))
    lib.gguf_init_from_file.restype = ctypes.c_void_p
    lib.gguf_init_from_file.argtypes = [ctypes.c_char_p, _Params]
    lib.gguf_free.argtypes = [ctypes.c_void_p]
    errors: list[str] = []

    def on_log(level: int, text: bytes, _: object) -> None:
        if level == 4:  # GGML_LOG_LEVEL_ERROR
            errors.append(text.decode("utf-8", "replace").strip())

    callback = _LOG(on_log)
    lib.ggml_log_set(callback, None)
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # nothing ggml prints can corrupt the answers
    for line in sys.stdin:
        errors.clear()
        ctx = lib.gguf_init_from_file(line.rstrip("\n").encode(), _Params(True, None))
        if ctx:
            lib.gguf_free(ctx)
        why = next((e for e in errors if "failed to read" not in e), errors[0] if errors else "")
        out.write(json.dumps({"ok": bool(ctx), "why": why[:300]}) + "\n")
        out.flush()


def verdicts(paths: list[Path]) -> Iterator[tuple[Path, Verdict]]:
    with GGMLParser() as parser:
        for path in paths:
            yield path, parser.verdict(path)


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve"]:
        sys.exit(serve())
    for file, v in verdicts([Path(a) for a in sys.argv[1:]]):
        print(f"{file}: {v.outcome} {v.why}")
