"""A tiny GGUF writer for tests: valid files, and malformed ones built precisely.

Deliberately independent of daemon.engine.gguf (its own type sizes, its own layout
rules), so a test's file is what the test says, not what the reader expects.

    gguf_bytes({"general.architecture": "llama", "general.file_type": Typed(STRING, "Q4")},
               [T("a.weight", (32, 2), F32)])

Metadata values are typed from Python (int → u32, float → f32, bool, str, list of str →
array of strings, list of int → array of i32, list of float → array of f32) unless
wrapped in `Typed`. Tensors get zero data of the right size and the offsets ggml
expects unless `data` or `offset` says otherwise.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# GGUF value types
U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)
VALUE_NAMES = (
    "u8",
    "i8",
    "u16",
    "i16",
    "u32",
    "i32",
    "f32",
    "bool",
    "str",
    "arr",
    "u64",
    "i64",
    "f64",
)
_FORMATS = {U8: "B", I8: "b", U16: "H", I16: "h", U32: "I", I32: "i", F32: "f", BOOL: "?",
            U64: "Q", I64: "q", F64: "d"}  # fmt: skip

# ggml tensor types used in tests -> (elements per block, bytes per block)
GGML_F32, GGML_F16, GGML_Q4_0, GGML_Q4_1, GGML_Q8_0, GGML_Q4_K = 0, 1, 2, 3, 8, 12
GGML_IQ2_XXS, GGML_TQ1_0, GGML_MXFP4 = 16, 34, 39
BLOCKS = {GGML_F32: (1, 4), GGML_F16: (1, 2), GGML_Q4_0: (32, 18), GGML_Q4_1: (32, 20),
          GGML_Q8_0: (32, 34), GGML_Q4_K: (256, 144), GGML_IQ2_XXS: (256, 66),
          GGML_TQ1_0: (256, 54), GGML_MXFP4: (32, 17)}  # fmt: skip


@dataclass(frozen=True)
class Typed:
    """A metadata value with an explicit GGUF type (``item`` for arrays: the items' type)."""

    type: int
    value: Any
    item: int | None = None


@dataclass(frozen=True)
class Raw:
    """A metadata value given as its type tag and the exact bytes that follow it."""

    type: int
    payload: bytes


@dataclass(frozen=True)
class T:
    """A tensor: GGUF shape (innermost first), ggml type, optional raw data and offset."""

    name: str
    shape: tuple[int, ...]
    type: int = GGML_F32
    data: bytes | None = None
    offset: int | None = None  # relative to the data section; None: where ggml expects it


def nbytes(shape: tuple[int, ...], ggml_type: int) -> int:
    block, size = BLOCKS[ggml_type]
    count = 1
    for dim in shape:
        count *= dim
    return count // block * size


def string(value: str | bytes) -> bytes:
    data = value.encode() if isinstance(value, str) else value
    return struct.pack("<Q", len(data)) + data


def typed(value: Any) -> Typed:
    if isinstance(value, Typed):
        return value
    if isinstance(value, bool):
        return Typed(BOOL, value)
    if isinstance(value, int):
        return Typed(U32 if 0 <= value < 1 << 32 else I64, value)
    if isinstance(value, float):
        return Typed(F32, value)
    if isinstance(value, str | bytes):
        return Typed(STRING, value)
    items = list(value)
    if all(isinstance(v, str) for v in items):
        return Typed(ARRAY, items, STRING)
    if all(isinstance(v, float) for v in items):
        return Typed(ARRAY, items, F32)
    return Typed(ARRAY, items, I32)


def payload(vtype: int, value: Any, item: int | None = None) -> bytes:
    """A value's bytes after its type tag (an array: item type, count, items)."""
    if vtype == STRING:
        return string(value)
    if vtype == ARRAY:
        assert item is not None
        head = struct.pack("<IQ", item, len(value))
        if item == ARRAY:  # arrays of arrays: values are Typed arrays
            return head + b"".join(payload(ARRAY, v.value, v.item) for v in value)
        if item == STRING:
            return head + b"".join(string(v) for v in value)
        return head + struct.pack(f"<{len(value)}{_FORMATS[item]}", *value)
    return struct.pack("<" + _FORMATS[vtype], value)


def kv(key: str | bytes, value: Any) -> bytes:
    if isinstance(value, Raw):
        return string(key) + struct.pack("<I", value.type) + value.payload
    v = typed(value)
    return string(key) + struct.pack("<I", v.type) + payload(v.type, v.value, v.item)


def gguf_bytes(
    metadata: dict[str, Any] | list[tuple[str | bytes, Any]],
    tensors: Sequence[T] = (),
    *,
    version: int = 3,
    align: int | None = None,
) -> bytes:
    """A GGUF file. ``align``: the data layout's alignment (default: the metadata's, or 32)."""
    items = list(metadata.items()) if isinstance(metadata, dict) else list(metadata)
    if align is None:
        meta_align = dict(items).get("general.alignment", 32)
        ok = isinstance(meta_align, int) and meta_align > 0 and not meta_align & (meta_align - 1)
        align = meta_align if ok else 32
    head = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(items))
    head += b"".join(kv(k, v) for k, v in items)
    blobs, offset = [], 0
    for tensor in tensors:
        data = tensor.data if tensor.data is not None else bytes(nbytes(tensor.shape, tensor.type))
        at = tensor.offset if tensor.offset is not None else offset
        head += string(tensor.name) + struct.pack(
            f"<I{len(tensor.shape)}QIQ", len(tensor.shape), *tensor.shape, tensor.type, at
        )
        blobs.append(data + b"\0" * (-len(data) % align))
        offset += len(blobs[-1])
    head += b"\0" * (-len(head) % align)
    return head + b"".join(blobs)


def write(path: Path, metadata: Any, tensors: Sequence[T] = (), **options: Any) -> Path:
    path.write_bytes(gguf_bytes(metadata, tensors, **options))
    return path
