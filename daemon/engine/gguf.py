"""A small, strict GGUF reader: checks a model file before any engine touches it.

llama.cpp trusts the header it is given; a truncated or hostile file can crash it.
We read the header, metadata and tensor table ourselves, with every count and
length bounded by the file's size, and check that all tensor data lies inside the
file. Large metadata arrays (the vocabulary) are skipped unless asked for.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from daemon.errors import InvalidModel

MAGIC = b"GGUF"
MAX_TENSORS = 100_000
MAX_KV = 100_000
MAX_DIMS = 4

# ggml tensor type -> (block size in elements, bytes per block)
TYPE_SIZES: dict[int, tuple[int, int]] = {
    0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34),
    9: (32, 36), 10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176), 14: (256, 210),
    15: (256, 292), 24: (1, 1), 25: (1, 2), 26: (1, 4), 27: (1, 8), 28: (1, 8), 30: (1, 2),
}  # fmt: skip
TYPE_NAMES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 9: "Q8_1",
    10: "Q2_K", 11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 15: "Q8_K", 30: "BF16",
}  # fmt: skip
FILE_TYPES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
    11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S",
    17: "Q5_K_M", 18: "Q6_K", 32: "BF16",
}  # fmt: skip

_SCALARS = {
    0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q",
    12: "<d",
}  # fmt: skip
_STRING, _ARRAY = 8, 9


@dataclass(frozen=True)
class Tensor:
    name: str
    shape: tuple[int, ...]  # GGUF order: innermost dimension first
    type: int
    offset: int  # absolute offset in the file

    @property
    def type_name(self) -> str:
        return TYPE_NAMES.get(self.type, f"type{self.type}")


@dataclass
class GGUFInfo:
    path: Path
    version: int
    metadata: dict[str, Any]
    tensors: list[Tensor] = field(default_factory=list)

    @property
    def architecture(self) -> str:
        return str(self.metadata.get("general.architecture", "unknown"))

    @property
    def context_length(self) -> int:
        return int(self.metadata.get(f"{self.architecture}.context_length", 2048))

    @property
    def quantization(self) -> str:
        ft = self.metadata.get("general.file_type")
        return FILE_TYPES.get(int(ft), f"type{ft}") if ft is not None else "unknown"

    @property
    def chat_template(self) -> str | None:
        value = self.metadata.get("tokenizer.chat_template")
        return str(value) if value is not None else None


class _Reader:
    """Reads from an in-memory window of the file that grows on demand (headers are a few MB)."""

    def __init__(self, fh: BinaryIO, size: int, path: Path) -> None:
        self.fh, self.size, self.path = fh, size, path
        self.buf = b""
        self.pos = 0

    def fail(self, why: str) -> InvalidModel:
        return InvalidModel(
            f"{self.path.name} is not a valid GGUF model: {why}", path=str(self.path)
        )

    def tell(self) -> int:
        return self.pos

    def _need(self, n: int) -> None:
        if n < 0 or self.pos + n > self.size:
            raise self.fail("the file ends early (truncated?)")
        if self.pos + n > len(self.buf):
            want = max(self.pos + n, 2 * len(self.buf), 1 << 20)
            self.buf += self.fh.read(want - len(self.buf))

    def take(self, n: int) -> bytes:
        self._need(n)
        self.pos += n
        return self.buf[self.pos - n : self.pos]

    def unpack(self, fmt: str) -> Any:
        n = struct.calcsize(fmt)
        self._need(n)
        value = struct.unpack_from(fmt, self.buf, self.pos)[0]
        self.pos += n
        return value

    def string(self) -> str:
        n = self.unpack("<Q")
        if n > self.size - self.pos:
            raise self.fail(f"the file ends inside a {n}-byte string (truncated?)")
        return self.take(n).decode("utf-8", errors="replace")

    def skip_strings(self, count: int) -> None:
        for _ in range(count):
            n = self.unpack("<Q")
            self._need(n)
            self.pos += n

    def value(self, vtype: int, keep_arrays: bool) -> Any:
        if vtype in _SCALARS:
            return self.unpack(_SCALARS[vtype])
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            itype, count = self.unpack("<I"), self.unpack("<Q")
            if count > self.size - self.pos:
                raise self.fail(f"the file ends inside a {count}-item array (truncated?)")
            if keep_arrays:
                return [self.value(itype, keep_arrays) for _ in range(count)]
            if itype in _SCALARS:
                self.take(count * struct.calcsize(_SCALARS[itype]))
            elif itype == _STRING:
                self.skip_strings(count)
            else:
                for _ in range(count):
                    self.value(itype, keep_arrays)
            return _Skipped(count)
        raise self.fail(f"unknown metadata value type {vtype}")


@dataclass(frozen=True)
class _Skipped:
    """Stands in for a metadata array that was not loaded; len() still works."""

    count: int

    def __len__(self) -> int:
        return self.count


def read_gguf(path: Path, *, keep_arrays: bool = False) -> GGUFInfo:
    """Parse and validate a GGUF file's header; raise InvalidModel on anything off."""
    path = Path(path)
    try:
        size = path.stat().st_size
        fh = path.open("rb")
    except OSError as exc:
        raise InvalidModel(f"cannot read {path}: {exc.strerror}", path=str(path)) from exc
    with fh:
        r = _Reader(fh, size, path)
        if size < 24 or r.take(4) != MAGIC:
            raise r.fail("it does not start with the GGUF magic bytes")
        version = r.unpack("<I")
        if version not in (2, 3):
            raise r.fail(f"unsupported GGUF version {version} (2 and 3 are supported)")
        n_tensors, n_kv = r.unpack("<Q"), r.unpack("<Q")
        if n_tensors > MAX_TENSORS or n_kv > MAX_KV:
            raise r.fail(f"implausible counts ({n_tensors} tensors, {n_kv} metadata keys)")
        metadata: dict[str, Any] = {}
        for _ in range(n_kv):
            key = r.string()
            metadata[key] = r.value(r.unpack("<I"), keep_arrays)
        raw: list[tuple[str, tuple[int, ...], int, int]] = []
        for _ in range(n_tensors):
            name = r.string()
            n_dims = r.unpack("<I")
            if not 1 <= n_dims <= MAX_DIMS:
                raise r.fail(f"tensor {name!r} has {n_dims} dimensions")
            shape = tuple(r.unpack("<Q") for _ in range(n_dims))
            raw.append((name, shape, r.unpack("<I"), r.unpack("<Q")))
        align = int(metadata.get("general.alignment", 32)) or 32
        data_start = -(-r.tell() // align) * align
    tensors = []
    for name, shape, ttype, offset in raw:
        start = data_start + offset
        count = 1
        for dim in shape:
            count *= dim
        block, nbytes = TYPE_SIZES.get(ttype, (1, 0))
        if count % block:
            raise r.fail(f"tensor {name!r} has {count} elements, not a multiple of {block}")
        if start + count // block * nbytes > size:
            raise r.fail(f"tensor {name!r} lies past the end of the file (truncated?)")
        tensors.append(Tensor(name, shape, ttype, start))
    return GGUFInfo(path, version, metadata, tensors)
