"""Fuzz Hearth's GGUF reader against ggml's own parser, seeded and reproducible.

Mutants come from a few valid seed files (a tiny llama with its vocabulary, a file
with every metadata type and a range of tensor types, one without tensors), by
structure-aware edits: a count, length, type, dimension or offset field set to an
edge value; bit flips; bytes inserted, deleted or duplicated; truncations; and whole
files generated with random metadata types, tensor types, shapes and offsets. Each
mutant goes to our reader and to ggml's `gguf_init_from_file` (in a worker process:
tests/daemon/engine/ggml_oracle.py). A file our reader accepts also goes through
what the daemon does next (describe it for `models list`, check it for MLX).

Failures: any exception but InvalidModel; a file ggml refuses (or crashes or hangs
on) that we accept; a parse over --max-seconds or over --max-mb of traced memory.
The process runs under an address-space limit (--cap-mb), so a runaway allocation
fails as MemoryError instead of exhausting the machine.

    .venv/bin/python bench/gguf_fuzz.py [--mutants 20000] [--seed 1] [--truncations] [--json]
    .venv/bin/python bench/gguf_fuzz.py --worst   # time and memory of the largest headers

tests/daemon/engine/test_gguf_fuzz.py runs 400 mutants of it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import resource
import struct
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from daemon.engine.gguf import GGUFInfo, read_gguf
from daemon.engine.mlx_gguf import check_mlx_gguf
from daemon.errors import InvalidModel
from tests.daemon.engine import ggufwrite as w
from tests.daemon.engine.conftest_mlx import tiny_llama_metadata, tiny_llama_tensors
from tests.daemon.engine.ggml_oracle import GGMLParser, Verdict

_INTEGERS = (w.U8, w.I8, w.U16, w.I16, w.I32, w.U64, w.I64)
_SIZES = {w.U8: 1, w.I8: 1, w.U16: 2, w.I16: 2, w.U32: 4, w.I32: 4, w.F32: 4, w.BOOL: 1,
          w.U64: 8, w.I64: 8, w.F64: 8}  # fmt: skip


def seeds() -> dict[str, bytes]:
    """Valid files the mutants start from."""
    llama = w.gguf_bytes(
        {**tiny_llama_metadata(), "llama.attention.layer_norm_rms_epsilon": 1e-5},
        [w.T(*t) for t in tiny_llama_tensors()],
    )
    every_type = w.gguf_bytes(
        {
            "general.architecture": "test",
            "general.alignment": 64,
            **{
                f"x.{name}": w.Typed(code, 1)
                for code, name in [
                    (w.U8, "u8"),
                    (w.I8, "i8"),
                    (w.U16, "u16"),
                    (w.I16, "i16"),
                    (w.I32, "i32"),
                    (w.U64, "u64"),
                    (w.I64, "i64"),
                ]
            },
            "x.f64": w.Typed(w.F64, 0.5),
            "x.bool": True,
            "x.floats": [0.5, 1.5],
            "x.u8s": w.Typed(w.ARRAY, [1, 2, 3], w.U8),
            "x.strings": ["a", "bc", ""],
        },
        [
            w.T("f16.weight", (32, 2), w.GGML_F16),
            w.T("q4_0.weight", (64,), w.GGML_Q4_0),
            w.T("q8_0.weight", (32, 3), w.GGML_Q8_0),
            w.T("q4_k.weight", (256,), w.GGML_Q4_K),
            w.T("iq2.weight", (256,), w.GGML_IQ2_XXS),
            w.T("mxfp4.weight", (32,), w.GGML_MXFP4),
            w.T("f32.weight", (4, 2, 2, 2)),
        ],
    )
    empty = w.gguf_bytes({"general.architecture": "llama", "general.name": "none"})
    return {"llama": llama, "every-type": every_type, "no-tensors": empty}


def fields(data: bytes) -> tuple[list[tuple[int, int]], int]:
    """(offset, width) of every number in a valid file's header, and where the header ends."""
    found: list[tuple[int, int]] = []
    pos = 4

    def number(width: int) -> int:
        nonlocal pos
        found.append((pos, width))
        pos += width
        return int.from_bytes(data[pos - width : pos], "little")

    def value(vtype: int) -> None:
        nonlocal pos
        if vtype == w.STRING:
            length = number(8)  # (not `pos += number(8)`: that adds to the old pos)
            pos += length
        elif vtype == w.ARRAY:
            itype, count = number(4), number(8)
            for _ in range(count):
                value(itype)
        else:
            number(_SIZES[vtype])

    number(4)
    n_tensors, n_kv = number(8), number(8)
    for _ in range(n_kv):
        length = number(8)
        pos += length
        value(number(4))
    for _ in range(n_tensors):
        length = number(8)
        pos += length
        for _ in range(number(4)):
            number(8)
        number(4)
        number(8)
    return found, pos


def _edge(rng: random.Random, width: int, old: int, size: int) -> int:
    top = 1 << (8 * width)
    picks = [0, 1, 2, 3, 4, 7, 8, 9, 12, 13, 31, 32, 33, 63, 64, 65, 255, 256, 257,
             top // 2 - 1, top // 2, top - 1, old + 1, old - 1, old * 2, old + 32, size,
             size - 1, size + 1, rng.randrange(top)]  # fmt: skip
    return rng.choice(picks) % top


def mutate(rng: random.Random, data: bytes, layout: tuple[list[tuple[int, int]], int]) -> bytes:
    """One structure-aware edit of a valid file (sometimes two, stacked)."""
    numbers, head_end = layout
    out = bytearray(data)
    for _ in range(1 if rng.random() < 0.75 else 2):
        if not out:  # an earlier edit truncated it all
            break
        how = rng.random()
        if how < 0.45:  # a count, length, type, dimension or offset set to an edge value
            pos, width = rng.choice(numbers)
            old = int.from_bytes(out[pos : pos + width], "little")
            out[pos : pos + width] = _edge(rng, width, old, len(out)).to_bytes(width, "little")
        elif how < 0.6:  # bit flips in the header
            for _ in range(rng.randint(1, 4)):
                at = rng.randrange(min(head_end, len(out)))
                out[at] ^= 1 << rng.randrange(8)
        elif how < 0.7:  # bytes inserted
            at = rng.randrange(min(head_end, len(out)))
            out[at:at] = rng.randbytes(rng.choice([1, 4, 8, rng.randint(1, 64)]))
        elif how < 0.8:  # bytes deleted
            at = rng.randrange(min(head_end, len(out)))
            del out[at : at + rng.choice([1, 4, 8, rng.randint(1, 64)])]
        elif how < 0.9:  # a stretch of the header duplicated in place
            at = rng.randrange(min(head_end, len(out)))
            out[at:at] = out[at : at + rng.randint(8, 96)]
        else:  # truncated
            del out[rng.randrange(len(out)) :]
    return bytes(out)


def generated(rng: random.Random) -> bytes:
    """A whole file from random parts: metadata types, tensor types, shapes and offsets."""
    metadata: list[tuple[str, Any]] = [("general.architecture", rng.choice(["llama", "x", ""]))]
    for i in range(rng.randint(0, 6)):
        key = rng.choice([f"k{i}", "general.alignment", "general.file_type", "k0", ""])
        vtype = rng.choice([w.U8, w.I32, w.U32, w.U64, w.F32, w.STRING, w.BOOL, w.ARRAY])
        if vtype == w.STRING:
            metadata.append((key, w.Typed(w.STRING, "s" * rng.randint(0, 40))))
        elif vtype == w.ARRAY:
            item = rng.choice([w.U8, w.I32, w.STRING, w.F32])
            values = ["t"] * 3 if item == w.STRING else [1, 2, 3]
            metadata.append((key, w.Typed(w.ARRAY, values, item)))
        elif vtype == w.F32:
            metadata.append((key, w.Typed(w.F32, rng.choice([0.5, float("nan"), 1e30]))))
        else:
            metadata.append((key, w.Typed(vtype, rng.choice([0, 1, 3, 32, 64, 2**31 - 1]) % 200)))
    tensors = []
    for i in range(rng.randint(0, 4)):
        ggml_type = rng.choice([0, 1, 2, 8, 12, 16, 39, 30, 4, 31, 43, 99])
        row = rng.choice([1, 16, 32, 48, 64, 256])
        shape = tuple([row] + [rng.choice([1, 2, 3]) for _ in range(rng.randint(0, 2))])
        name = rng.choice([f"t{i}.weight", "t0.weight", "n" * rng.choice([1, 63, 64])])
        block, block_bytes = w.BLOCKS.get(ggml_type, (1, 4))
        count = 1
        for dim in shape:
            count *= dim
        data = bytes(max(1, count // max(block, 1) * block_bytes))
        offset = rng.choice([None, None, None, 0, 4, 32, 1000])
        tensors.append(w.T(name, shape, ggml_type, data, offset))
    return w.gguf_bytes(metadata, tensors, align=rng.choice([None, 32, 64]))


def mutants(seed: int, count: int) -> Iterator[tuple[str, bytes]]:
    rng = random.Random(seed)
    bases = seeds()
    layouts = {name: fields(data) for name, data in bases.items()}
    for _ in range(count):
        if rng.random() < 0.15:
            yield "generated", generated(rng)
        else:
            name = rng.choice(list(bases))
            yield name, mutate(rng, bases[name], layouts[name])


def truncations() -> Iterator[tuple[str, bytes]]:
    """Every seed cut at every byte of its header and at every tensor's start and end."""
    for name, data in seeds().items():
        _, head_end = fields(data)
        info = _parse_bytes(data)
        cuts = set(range(head_end + 1))
        for tensor in info.tensors if info else []:
            cuts |= {tensor.offset, tensor.offset + 1, len(data) - 1}
        for cut in sorted(cuts):
            yield f"{name}-cut", data[:cut]


def _parse_bytes(data: bytes) -> GGUFInfo | None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "seed.gguf"
        path.write_bytes(data)
        return read_gguf(path)


@dataclass
class Report:
    files: int = 0
    ggml: Counter[str] = field(default_factory=Counter)  # accepted / refused / crashed / hung
    ours_accepted: int = 0
    both_accepted: int = 0
    stricter: int = 0  # ggml accepted, we refused (allowed: we check more)
    max_seconds: float = 0.0
    max_mb: float = 0.0
    failures: list[dict[str, Any]] = field(default_factory=list)
    reasons: Counter[str] = field(default_factory=Counter)  # ggml's refusals, by message
    stricter_reasons: Counter[str] = field(default_factory=Counter)  # ours, where ggml accepted

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["ggml"] = dict(self.ggml)
        out["reasons"] = dict(self.reasons.most_common(25))
        out["stricter_reasons"] = dict(self.stricter_reasons.most_common(25))
        return out


def _ours(path: Path) -> tuple[str, str]:
    """Our verdict: ("accepted"|"refused", detail); any other exception propagates."""
    try:
        info = read_gguf(path)
    except InvalidModel as exc:
        return "refused", exc.message
    _ = (info.quantization, info.context_length, info.architecture, info.chat_template)
    with contextlib.suppress(InvalidModel):
        check_mlx_gguf(info)
    return "accepted", ""


def run(
    cases: Iterator[tuple[str, bytes]], *, max_seconds: float, max_mb: float,
    progress: Callable[[int], None] | None = None,
) -> Report:  # fmt: skip
    report = Report()
    with tempfile.TemporaryDirectory(prefix="ggfz-") as tmp, GGMLParser() as ggml:
        path = Path(tmp) / "m.gguf"
        tracemalloc.start()
        for origin, data in cases:
            path.write_bytes(data)
            report.files += 1
            tracemalloc.reset_peak()
            start = time.perf_counter()
            try:
                ours, detail = _ours(path)
            except Exception as exc:
                ours, detail = "error", f"{type(exc).__name__}: {str(exc)[:200]}"
            seconds = time.perf_counter() - start
            mb = tracemalloc.get_traced_memory()[1] / 1e6
            verdict: Verdict = ggml.verdict(path)
            report.ggml[verdict.outcome] += 1
            if not verdict.accepted:
                report.reasons[_reason(verdict)] += 1
            report.ours_accepted += ours == "accepted"
            report.both_accepted += ours == "accepted" and verdict.accepted
            if ours == "refused" and verdict.accepted:
                report.stricter += 1
                report.stricter_reasons[_gist(detail.partition(": ")[2])] += 1
            report.max_seconds = max(report.max_seconds, seconds)
            report.max_mb = max(report.max_mb, mb)
            problem = (
                "not InvalidModel" if ours == "error"
                else "accepted what ggml refuses" if ours == "accepted" and not verdict.accepted
                else "slow" if seconds > max_seconds
                else "memory" if mb > max_mb
                else None
            )  # fmt: skip
            if problem:
                report.failures.append(
                    {"problem": problem, "origin": origin, "detail": detail,
                     "ggml": f"{verdict.outcome} {verdict.why}", "seconds": round(seconds, 3),
                     "mb": round(mb, 2), "hex": data[:512].hex()}
                )  # fmt: skip
            if progress and report.files % 1000 == 0:
                progress(report.files)
        tracemalloc.stop()
    return report


def _reason(verdict: Verdict) -> str:
    """ggml's refusal without the specifics (names, numbers), to count kinds of refusals."""
    if verdict.outcome != "refused":
        return verdict.outcome
    return _gist(verdict.why.replace("gguf_init_from_reader: ", ""))


def _gist(message: str) -> str:
    words = message.split()
    return " ".join(x for x in words if not any(c.isdigit() for c in x) and "'" not in x)[:80]


def worst_cases() -> list[tuple[str, float, float, str]]:
    """Time and traced memory of the biggest headers the reader must get through (or refuse
    at once): (case, seconds, peak MB, verdict). Sparse files, so they cost no disk."""
    from daemon.engine.gguf import MAX_HEADER
    from daemon.engine.registry import default_model_path

    def array_file(path: Path, item: int, count: int, size: int) -> Path:
        head = b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + w.string("x.big")
        head += struct.pack("<IIQ", w.ARRAY, item, count)
        with path.open("wb") as fh:
            fh.write(head)
            fh.truncate(len(head) + count * size)
        return path

    rows = []
    with tempfile.TemporaryDirectory(prefix="ggfz-") as tmp:
        default = default_model_path()
        cases: list[tuple[str, Callable[[], Any]]] = []
        if default is not None:
            cases += [
                ("the default model (49,152-token vocabulary)", lambda: read_gguf(default)),
                ("the same, vocabulary kept (the MLX runner)",
                 lambda: read_gguf(default, keep_arrays=True)),
            ]  # fmt: skip
        fits = (MAX_HEADER - 100) // 8
        strings = array_file(Path(tmp) / "s.gguf", w.STRING, fits, 8)
        small = array_file(Path(tmp) / "u.gguf", w.U8, MAX_HEADER - 100, 1)
        huge = array_file(Path(tmp) / "h.gguf", w.U8, 3_000_000_000, 1)
        many = array_file(Path(tmp) / "m.gguf", w.STRING, 12_000_000, 8)
        cases += [
            (f"{fits:,} empty strings (the 64 MiB cap)", lambda: read_gguf(strings)),
            ("a 64 MB u8 array, skipped", lambda: read_gguf(small)),
            ("a 3 GB u8 array (refused)", lambda: read_gguf(huge)),
            ("12,000,000 empty strings (refused)", lambda: read_gguf(many)),
        ]
        for name, fn in cases:
            start = time.perf_counter()
            verdict = _verdict(fn)
            seconds = time.perf_counter() - start
            tracemalloc.start()  # a second run for memory: tracing slows the parse ~10x
            _verdict(fn)
            rows.append((name, seconds, tracemalloc.get_traced_memory()[1] / 1e6, verdict))
            tracemalloc.stop()
    return rows


def _verdict(fn: Callable[[], Any]) -> str:
    try:
        fn()
    except InvalidModel:
        return "refused"
    return "accepted"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mutants", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--truncations", action="store_true", help="also every truncation")
    parser.add_argument("--max-seconds", type=float, default=2.0, help="per file")
    parser.add_argument("--max-mb", type=float, default=16.0, help="traced memory per file")
    parser.add_argument("--cap-mb", type=int, default=2048, help="address-space limit")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--worst", action="store_true", help="time the largest headers only")
    args = parser.parse_args()
    if args.worst:
        print("| header | s | traced MB | verdict |\n| --- | ---: | ---: | --- |")
        for name, seconds, mb, verdict in worst_cases():
            print(f"| {name} | {seconds:.2f} | {mb:.1f} | {verdict} |")
        return 0
    cap = args.cap_mb << 20
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    cases: Iterator[tuple[str, bytes]] = mutants(args.seed, args.mutants)
    if args.truncations:
        cases = (c for source in (truncations(), cases) for c in source)
    start = time.perf_counter()
    report = run(
        cases, max_seconds=args.max_seconds, max_mb=args.max_mb,
        progress=None if args.json else lambda n: print(f"  {n} files…", flush=True),
    )  # fmt: skip
    elapsed = time.perf_counter() - start
    if args.json:
        print(json.dumps({**report.to_dict(), "elapsed_s": round(elapsed, 1)}))
        return 0
    print(f"{report.files} files in {elapsed:.0f} s (seed {args.seed})")
    print(f"ggml: {dict(report.ggml)}")
    print(f"ours: accepted {report.ours_accepted}, of which ggml accepted {report.both_accepted}")
    print(f"refused by us only (stricter than ggml): {report.stricter}")
    print(f"slowest parse {report.max_seconds * 1000:.1f} ms, peak traced memory "
          f"{report.max_mb:.2f} MB")  # fmt: skip
    print("ggml's refusals by kind:")
    for reason, n in report.reasons.most_common(15):
        print(f"  {n:6}  {reason}")
    print("refused by us only, by kind:")
    for reason, n in report.stricter_reasons.most_common(15):
        print(f"  {n:6}  {reason}")
    print(f"FAILURES: {len(report.failures)}")
    for failure in report.failures[:20]:
        print(f"  {failure}")
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
