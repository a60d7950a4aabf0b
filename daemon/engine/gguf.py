"""A small, strict GGUF reader: checks a model file before any engine touches it.

Model files are untrusted input: llama.cpp and MLX parse them in C, and MLX trusts
what it reads. We read the header, metadata and tensor table ourselves and refuse,
with `InvalidModel` and nothing else, whatever ggml's own `gguf_init_from_file`
refuses (duplicate keys or tensor names, arrays of arrays, an alignment that is not a
power of two, unknown tensor types, rows that are not whole blocks, tensors that are
not stored in order, aligned, without gaps or overlaps) plus what would hurt us:
counts, lengths and offsets past the file, a header over `MAX_HEADER` bytes, and
metadata values of the wrong type (`gguf_types.KEY_KINDS`). Time and memory stay
bounded by `MAX_HEADER`, whatever the file's size: payloads we do not keep (large
arrays, long strings) are seeked past, never read.
"""

from __future__ import annotations

import fnmatch
import math
import stat
import struct
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from daemon.engine import gguf_types as t
from daemon.errors import InvalidModel

MAGIC = b"GGUF"
MAX_TENSORS = 100_000
MAX_KV = 100_000
MAX_DIMS = 4
MAX_HEADER = 64 << 20  # metadata and tensor table; real models need a few MB (the vocabulary)
MAX_KEY = 256  # bytes in a metadata key
MAX_TENSOR_NAME = 63  # bytes in a tensor name: ggml's GGML_MAX_NAME, less its NUL
MAX_KEPT_STRING = 1 << 20  # longer strings are skipped unless keep_arrays
MAX_ALIGNMENT = 1 << 20  # as newer ggml: a huge alignment is only a way to pad a file
INT64_MAX = (1 << 63) - 1
READER_VERSION = 2  # bump when the reader gets stricter: cached verdicts are then redone
WINDOW = 1 << 16  # bytes read from the file at a time

TYPE_NAMES = {code: name for code, (name, _, _) in t.TENSOR_TYPES.items()}
FILE_TYPES = t.FILE_TYPES
_SCALARS = {
    t.U8: struct.Struct("<B"), t.I8: struct.Struct("<b"), t.U16: struct.Struct("<H"),
    t.I16: struct.Struct("<h"), t.U32: struct.Struct("<I"), t.I32: struct.Struct("<i"),
    t.F32: struct.Struct("<f"), t.BOOL: struct.Struct("<?"), t.U64: struct.Struct("<Q"),
    t.I64: struct.Struct("<q"), t.F64: struct.Struct("<d"),
}  # fmt: skip
_U32, _U64 = _SCALARS[t.U32], _SCALARS[t.U64]


def shorten(text: str, limit: int = 60) -> str:
    """A file-provided name fit for an error message: repr'd, cut to ``limit`` characters."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}… ({len(text)} characters)"


@dataclass(frozen=True)
class Tensor:
    name: str
    shape: tuple[int, ...]  # GGUF order: innermost dimension first
    type: int
    offset: int  # absolute offset in the file

    @property
    def type_name(self) -> str:
        return t.tensor_type_name(self.type)


@dataclass(frozen=True)
class Skipped:
    """A payload left unread: an array (unless keep_arrays) or a string over 1 MiB.

    ``len()`` is the array's item count (or the string's length in bytes)."""

    item_type: int
    count: int
    array: bool = True

    def __len__(self) -> int:
        return self.count


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
        value = self.metadata.get(f"{self.architecture}.context_length")
        return value if isinstance(value, int) and value > 0 else 2048

    @property
    def quantization(self) -> str:
        ft = self.metadata.get("general.file_type")
        if not isinstance(ft, int):
            return "unknown"
        return FILE_TYPES.get(ft, f"type{ft}")

    @property
    def chat_template(self) -> str | None:
        value = self.metadata.get("tokenizer.chat_template")
        return value if isinstance(value, str) else None


class _Reader:
    """Reads the header through a small window; what is not kept is seeked past."""

    def __init__(self, fh: BinaryIO, size: int, path: Path) -> None:
        self.fh, self.size, self.path = fh, size, path
        self.buf = b""
        self.base = 0  # file offset of buf[0]
        self.pos = 0

    def fail(self, why: str) -> InvalidModel:
        return InvalidModel(
            f"{self.path.name} is not a valid GGUF model: {why}", path=str(self.path)
        )

    def room(self, n: int) -> None:
        """Fail unless ``n`` more bytes of header lie ahead, inside the file and the cap."""
        if n > self.size - self.pos:
            raise self.fail("the file ends early (truncated?)")
        if n > MAX_HEADER - self.pos:
            raise self.fail(
                f"its metadata and tensor table pass {MAX_HEADER >> 20} MiB "
                "(real models need a few MB)"
            )

    def _window(self, n: int) -> int:
        """Make ``n`` bytes at pos readable; return their offset in buf."""
        self.room(n)
        off = self.pos - self.base
        if off + n > len(self.buf):
            self.fh.seek(self.pos)
            self.buf, self.base, off = self.fh.read(max(n, WINDOW)), self.pos, 0
            if len(self.buf) < n:
                raise self.fail("the file ends early (it shrank while being read?)")
        return off

    def take(self, n: int) -> bytes:
        off = self._window(n)
        self.pos += n
        return self.buf[off : off + n]

    def unpack(self, st: struct.Struct) -> Any:
        off = self._window(st.size)
        self.pos += st.size
        return st.unpack_from(self.buf, off)[0]

    def skip(self, n: int) -> None:
        self.room(n)
        self.pos += n

    def text(self, n: int, what: str) -> str:
        try:
            return self.take(n).decode("utf-8")
        except UnicodeDecodeError:
            raise self.fail(f"{what} is not UTF-8 text") from None

    def skip_strings(self, count: int) -> None:
        """Seek past ``count`` strings: only their 8-byte lengths are read."""
        left = count
        while left:
            start = off = self._window(8)
            buf, last = self.buf, len(self.buf) - 8
            while left and off <= last:
                off += 8 + _U64.unpack_from(buf, off)[0]
                left -= 1
            self.skip(off - start)  # the strings walked lie inside the file (or this fails)

    def value(self, vtype: int, keep_arrays: bool) -> Any:
        if vtype in _SCALARS:
            return self.unpack(_SCALARS[vtype])
        if vtype == t.STRING:
            n = self.unpack(_U64)
            if keep_arrays or n <= MAX_KEPT_STRING:
                return self.take(n).decode("utf-8", errors="replace")
            self.skip(n)
            return Skipped(t.STRING, n, array=False)
        if vtype != t.ARRAY:
            raise self.fail(f"unknown metadata value type {vtype}")
        itype, count = self.unpack(_U32), self.unpack(_U64)
        if itype == t.ARRAY:
            raise self.fail("it nests arrays in arrays (GGUF does not allow that)")
        if itype == t.STRING:
            self.room(count * 8)  # each string has at least its length
            if not keep_arrays:
                self.skip_strings(count)
                return Skipped(t.STRING, count)
            return [self.take(self.unpack(_U64)).decode("utf-8", "replace") for _ in range(count)]
        if itype not in _SCALARS:
            raise self.fail(f"unknown metadata array type {itype}")
        item = _SCALARS[itype]
        if not keep_arrays:
            self.skip(count * item.size)
            return Skipped(itype, count)
        data = self.take(count * item.size)
        return list(struct.unpack(f"<{count}{item.format[1:]}", data))


def read_gguf(path: Path, *, keep_arrays: bool = False) -> GGUFInfo:
    """Parse and validate a GGUF file's header; raise InvalidModel on anything off."""
    path = Path(path)
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):  # a FIFO would block open() until written to
            raise InvalidModel(f"{path} is not a regular file", path=str(path))
        size = info.st_size
        fh = path.open("rb")
    except OSError as exc:
        raise InvalidModel(f"cannot read {path}: {exc.strerror}", path=str(path)) from exc
    try:
        with fh:
            return _parse(_Reader(fh, size, path), keep_arrays)
    except OSError as exc:  # an I/O error mid-read (a disk, a network share going away)
        raise InvalidModel(f"cannot read {path}: {exc.strerror or exc}", path=str(path)) from exc


def _parse(r: _Reader, keep_arrays: bool) -> GGUFInfo:
    if r.size < 24 or r.take(4) != MAGIC:
        raise r.fail("it does not start with the GGUF magic bytes")
    version = r.unpack(_U32)
    if version not in (2, 3):
        raise r.fail(f"unsupported GGUF version {version} (2 and 3 are supported)")
    n_tensors, n_kv = r.unpack(_U64), r.unpack(_U64)
    if n_tensors > MAX_TENSORS or n_kv > MAX_KV:
        raise r.fail(f"implausible counts ({n_tensors} tensors, {n_kv} metadata keys)")
    metadata: dict[str, Any] = {}
    vtypes: dict[str, tuple[int, int | None]] = {}  # key -> (value type, array item type)
    for _ in range(n_kv):
        n = r.unpack(_U64)
        if not 0 < n <= MAX_KEY:
            raise r.fail(f"a metadata key is {n} bytes long (1 to {MAX_KEY} are allowed)")
        key = r.text(n, "a metadata key")
        if key in metadata:
            raise r.fail(f"metadata key {shorten(key)} appears twice")
        vtype = r.unpack(_U32)
        value = r.value(vtype, keep_arrays)
        metadata[key] = value
        item = value.item_type if isinstance(value, Skipped) and value.array else None
        vtypes[key] = (vtype, item if vtype == t.ARRAY else None)
    _check_kinds(r, metadata, vtypes)
    align = metadata.get("general.alignment", 32)
    if not 0 < align <= MAX_ALIGNMENT or align & (align - 1):
        raise r.fail(f"general.alignment {align} is not a power of two up to {MAX_ALIGNMENT}")
    raw: list[tuple[str, tuple[int, ...], int, int, int]] = []
    seen: set[str] = set()
    for _ in range(n_tensors):
        raw.append(_tensor_info(r))
        if raw[-1][0] in seen:
            raise r.fail(f"tensor {shorten(raw[-1][0])} appears twice")
        seen.add(raw[-1][0])
    data_start = -(-r.pos // align) * align
    tensors, expected = [], 0
    for name, shape, ttype, offset, nbytes in raw:
        if offset != expected:
            raise r.fail(
                f"tensor {shorten(name)} starts at byte {offset} of the data, not {expected}: "
                f"tensors must follow each other in order, aligned to {align} bytes, "
                "without gaps or overlaps"
            )
        if data_start + offset + nbytes > r.size:
            raise r.fail(f"tensor {shorten(name)} lies past the end of the file (truncated?)")
        tensors.append(Tensor(name, shape, ttype, data_start + offset))
        expected += -(-nbytes // align) * align
    return GGUFInfo(r.path, version, metadata, tensors)


def _tensor_info(r: _Reader) -> tuple[str, tuple[int, ...], int, int, int]:
    """One tensor table entry, checked as ggml checks it: (name, shape, type, offset, bytes)."""
    n = r.unpack(_U64)
    if not 0 < n <= MAX_TENSOR_NAME:
        raise r.fail(f"a tensor name is {n} bytes long (1 to {MAX_TENSOR_NAME} are allowed)")
    name = r.text(n, "a tensor name")
    n_dims = r.unpack(_U32)
    if not 1 <= n_dims <= MAX_DIMS:
        raise r.fail(f"tensor {shorten(name)} has {n_dims} dimensions (1 to {MAX_DIMS})")
    shape = tuple(r.unpack(_U64) for _ in range(n_dims))
    count = 1
    for dim in shape:
        count *= dim
        if dim == 0 or count > INT64_MAX:
            raise r.fail(f"tensor {shorten(name)} has an impossible shape {list(shape)}")
    ttype = r.unpack(_U32)
    type_name, block, block_bytes = t.TENSOR_TYPES.get(ttype, (f"type{ttype}", 0, 0))
    if block == 0:
        raise r.fail(
            f"tensor {shorten(name)} has type {type_name}, which ggml does not know "
            "or no longer supports"
        )
    if shape[0] % block:
        raise r.fail(
            f"tensor {shorten(name)} has rows of {shape[0]} elements, not whole "
            f"{type_name} blocks of {block}"
        )
    return name, shape, ttype, r.unpack(_U64), count // block * block_bytes


def _kind_of(key: str, kinds: dict[str, str]) -> str | None:
    kind = kinds.get(key)
    if kind is None and key.startswith("tokenizer.ggml."):
        kind = next((k for p, k in kinds.items() if "*" in p and fnmatch.fnmatchcase(key, p)), None)
    return kind


def _check_kinds(
    r: _Reader, metadata: dict[str, Any], vtypes: dict[str, tuple[int, int | None]]
) -> None:
    """Every value Hearth or llama.cpp interprets has the type it must have."""

    def check(key: str, kind: str) -> None:
        if _fits(kind, metadata[key], *vtypes[key]):
            return
        vtype, item = vtypes[key]
        got = t.VALUE_TYPE_NAMES[vtype]
        if item is not None:
            got = f"an array of {t.VALUE_TYPE_NAMES[item]}"
        raise r.fail(f"metadata {shorten(key)} must be {t.KINDS[kind]}, not {got}")

    if "general.architecture" in metadata:
        check("general.architecture", t.KEY_KINDS["general.architecture"])
    arch = str(metadata.get("general.architecture", "unknown"))
    kinds = {k.replace("{arch}", arch): v for k, v in t.KEY_KINDS.items()}
    for key in metadata:
        kind = _kind_of(key, kinds)
        if kind is not None:
            check(key, kind)


def _fits(kind: str, value: Any, vtype: int, item: int | None) -> bool:
    if kind == "u32":
        return vtype == t.U32
    if kind in ("count", "counts") and vtype in t.INTEGERS:
        return bool(value >= 0)
    if kind == "real":
        return vtype in t.REALS and math.isfinite(value)
    if kind == "name":
        return isinstance(value, str) and len(value) <= t.MAX_NAME_CHARS
    if kind == "text":
        return isinstance(value, str)
    if kind == "flag":
        return vtype == t.BOOL
    if vtype != t.ARRAY:
        return False
    items = {"counts": t.INTEGERS, "ints": t.INTEGERS, "reals": t.REALS, "strings": {t.STRING}}
    if isinstance(value, Skipped):
        return value.item_type in items.get(kind, ())
    if kind == "strings":
        return all(isinstance(v, str) for v in value)
    if kind in ("counts", "ints"):
        return all(isinstance(v, int) and not isinstance(v, bool) for v in value) and (
            kind == "ints" or all(v >= 0 for v in value)
        )
    if kind == "reals":
        return all(isinstance(v, float) for v in value)
    return False


class HeaderCache:
    """Parsed headers by (path, size, mtime), so a model is not re-read on every request.

    The daemon checks a GGUF each time an MLX chat names it; parsing a large header
    takes a while, and its answer changes only when the file does. Verdicts are
    cached too: a broken file is parsed once, not once per `models list`.
    """

    def __init__(self, capacity: int = 32) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[tuple[str, int, int], GGUFInfo | InvalidModel] = OrderedDict()
        self._lock = threading.Lock()

    def read(self, path: Path) -> GGUFInfo:
        path = Path(path)
        try:
            st = path.stat()
        except OSError as exc:
            raise InvalidModel(f"cannot read {path}: {exc.strerror}", path=str(path)) from exc
        key = (str(path), st.st_size, st.st_mtime_ns)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
        if entry is None:
            try:
                entry = read_gguf(path)
            except InvalidModel as exc:
                entry = exc
            with self._lock:
                self._entries[key] = entry
                while len(self._entries) > self.capacity:
                    self._entries.popitem(last=False)
        if isinstance(entry, InvalidModel):
            raise InvalidModel(entry.message, **entry.data)
        return entry
