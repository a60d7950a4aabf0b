"""The GGUF reader treats model files as hostile: it refuses what ggml refuses, and what
would hurt Hearth, with InvalidModel and nothing else, in bounded time and memory."""

from __future__ import annotations

import math
import os
import socket
import struct
import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from daemon.client import Client
from daemon.engine.gguf import read_gguf
from daemon.engine.registry import Registry
from daemon.errors import DaemonUnavailable, InvalidModel
from tests.daemon.engine import ggufwrite as w
from tests.daemon.engine.ggml_oracle import GGMLParser
from tests.daemon.engine.ggufwrite import T, Typed

META: dict[str, Any] = {"general.architecture": "llama", "llama.context_length": 64}
TENSORS = [T("a.weight", (32, 2)), T("b.weight", (64, 2), w.GGML_Q8_0), T("c.weight", (8,))]


@pytest.fixture(scope="module")
def ggml() -> Iterator[GGMLParser]:
    with GGMLParser() as parser:
        yield parser


def refused(path: Path) -> str:
    """The reader's message for a file it must refuse (any other exception fails the test)."""
    with pytest.raises(InvalidModel) as caught:
        read_gguf(path)
    assert path.name in caught.value.message
    return caught.value.message


def sparse(path: Path, head: bytes, size: int) -> Path:
    """``head``, then zeros up to ``size`` bytes, without writing them (a sparse file)."""
    with path.open("wb") as fh:
        fh.write(head)
        fh.truncate(size)
    return path


def test_a_well_formed_file_is_accepted_by_both_parsers(tmp_path: Path, ggml: GGMLParser) -> None:
    path = w.write(tmp_path / "ok.gguf", META, TENSORS)
    info = read_gguf(path)
    assert [t.name for t in info.tensors] == ["a.weight", "b.weight", "c.weight"]
    assert info.tensors[1].offset - info.tensors[0].offset == 256  # 64 F32 values
    assert ggml.verdict(path).accepted


# --- 1. metadata of the wrong type is refused when read, not when first used --------------


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("general.file_type", "Q4_1"),
        ("llama.context_length", "4096"),
        ("llama.context_length", Typed(w.I32, -1)),
        ("llama.block_count", 2.5),
        ("llama.rope.freq_base", Typed(w.F32, math.nan)),
        ("llama.attention.head_count", ["8"]),
        ("general.architecture", 7),
        ("tokenizer.ggml.bos_token_id", "1"),
        ("tokenizer.ggml.tokens", [1, 2, 3]),
        ("tokenizer.ggml.add_bos_token", 1),
        ("tokenizer.chat_template", Typed(w.ARRAY, ["{{x}}"], w.STRING)),
    ],
)
def test_metadata_of_the_wrong_type_is_refused(tmp_path: Path, key: str, value: Any) -> None:
    path = w.write(tmp_path / "typed.gguf", {**META, key: value}, TENSORS)
    assert f"metadata '{key}' must be" in refused(path)


def test_a_string_file_type_is_refused_at_import_and_nothing_is_copied(tmp_path: Path) -> None:
    path = w.write(tmp_path / "bad.gguf", {**META, "general.file_type": "Q4_1"}, TENSORS)
    registry = Registry(tmp_path / "models")
    with pytest.raises(InvalidModel, match=r"general\.file_type"):
        registry.import_file(path)
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())
    assert [m.builtin for m in registry.list()] == [True]


def test_list_skips_and_logs_a_file_it_cannot_describe(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    models = tmp_path / "models"
    models.mkdir()
    w.write(models / "old.gguf", {**META, "llama.context_length": "4096"}, TENSORS)
    w.write(models / "fine.gguf", {**META, "general.file_type": 7}, TENSORS)
    registry = Registry(models)
    listed = {m.name: m for m in registry.list()}
    assert set(listed) == {"smollm2-135m-instruct.q4_1", "fine"}
    assert listed["fine"].quantization == "Q8_0" and listed["fine"].context_length == 64
    assert "skipping" in caplog.text and "old.gguf" in caplog.text
    assert registry.remove("old").path == str(models / "old.gguf")  # rm still reaches it
    assert not (models / "old.gguf").exists()


# --- 3. alignment and nesting: InvalidModel, never ValueError or RecursionError -----------


@pytest.mark.parametrize(
    "alignment",
    [
        Typed(w.STRING, "32"),
        Typed(w.F32, math.nan),
        Typed(w.ARRAY, [32], w.U32),
        Typed(w.U64, 32),
        Typed(w.U32, 0),
        Typed(w.U32, 48),
    ],
    ids=["string", "nan", "array", "u64", "zero", "not-power-of-two"],
)
def test_alignment_must_be_a_u32_power_of_two(
    tmp_path: Path, ggml: GGMLParser, alignment: Typed
) -> None:
    path = w.write(tmp_path / "al.gguf", {**META, "general.alignment": alignment}, TENSORS)
    assert "alignment" in refused(path)
    assert not ggml.verdict(path).accepted


def test_an_absurd_alignment_is_refused(tmp_path: Path) -> None:
    metadata = {**META, "general.alignment": 1 << 31}
    path = w.write(tmp_path / "al.gguf", metadata, TENSORS[:1], align=32)
    assert "general.alignment" in refused(path)


def test_arrays_nested_a_thousand_deep_are_refused(tmp_path: Path, ggml: GGMLParser) -> None:
    payload = struct.pack("<IQB", w.U8, 1, 1)  # the innermost array: one u8
    for _ in range(1000):
        payload = struct.pack("<IQ", w.ARRAY, 1) + payload
    path = w.write(tmp_path / "deep.gguf", {**META, "x.deep": w.Raw(w.ARRAY, payload)}, TENSORS)
    assert path.stat().st_size < 20_000
    assert "arrays in arrays" in refused(path)
    assert not ggml.verdict(path).accepted


# --- 4. time and memory are bounded by MAX_HEADER, not by the file ------------------------


def _array_file(path: Path, item_type: int, count: int, item_size: int) -> Path:
    head = b"GGUF" + struct.pack("<IQQ", 3, 0, 2) + w.kv("general.architecture", "llama")
    head += w.string("x.big") + struct.pack("<IIQ", w.ARRAY, item_type, count)
    return sparse(path, head, len(head) + count * item_size)


def _peak(fn: Any) -> tuple[Any, int]:
    tracemalloc.start()
    try:
        result = fn()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_skipped_array_is_seeked_past_not_read(tmp_path: Path) -> None:
    path = _array_file(tmp_path / "u8.gguf", w.U8, 60_000_000, 1)
    info, peak = _peak(lambda: read_gguf(path))
    assert len(info.metadata["x.big"]) == 60_000_000
    assert peak < 4_000_000, f"peaked at {peak / 1e6:.1f} MB for a 60 MB array"


def test_a_three_gigabyte_array_is_refused_at_once(tmp_path: Path) -> None:
    path = _array_file(tmp_path / "3g.gguf", w.U8, 3_000_000_000, 1)
    start = time.monotonic()
    message, peak = _peak(lambda: refused(path))
    assert "64 MiB" in message
    assert peak < 4_000_000 and time.monotonic() - start < 5


def test_twelve_million_strings_are_refused_without_walking_them(tmp_path: Path) -> None:
    path = _array_file(tmp_path / "strings.gguf", w.STRING, 12_000_000, 8)  # all empty
    start = time.monotonic()
    assert "64 MiB" in refused(path)
    assert time.monotonic() - start < 5


def test_headers_are_cached_per_path_size_and_mtime(tmp_path: Path) -> None:
    from daemon.engine.gguf import HeaderCache

    path = w.write(tmp_path / "c.gguf", META, TENSORS)
    bad = w.write(tmp_path / "b.gguf", {**META, "general.file_type": "x"}, TENSORS)
    cache = HeaderCache()
    first = cache.read(path)
    assert cache.read(path) is first  # not parsed again
    os.utime(path, ns=(1, 1))
    assert cache.read(path) is not first  # the file changed: parsed again
    for _ in range(2):
        with pytest.raises(InvalidModel, match=r"general\.file_type"):
            cache.read(bad)


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.gguf"
    os.mkfifo(fifo)
    assert "not a regular file" in refused(fifo)


# --- 5. names from the file never make a huge message ---------------------------------------


def test_a_98_mb_tensor_name_gets_a_short_error(tmp_path: Path) -> None:
    n = 98_000_000
    head = b"GGUF" + struct.pack("<IQQ", 3, 1, 0) + struct.pack("<Q", n)
    path = sparse(tmp_path / "name.gguf", head, len(head) + n + 64)
    message = refused(path)
    assert len(message) < 300 and "98000000 bytes" in message


def test_a_98_mb_key_gets_a_short_error(tmp_path: Path) -> None:
    n = 98_000_000
    head = b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", n)
    path = sparse(tmp_path / "key.gguf", head, len(head) + n + 64)
    assert len(refused(path)) < 300


def test_a_long_architecture_name_is_refused_with_a_short_message(tmp_path: Path) -> None:
    path = w.write(tmp_path / "arch.gguf", {"general.architecture": "x" * 100_000}, TENSORS)
    assert len(refused(path)) < 300


def test_a_reply_cut_mid_line_is_daemon_unavailable_not_a_traceback() -> None:
    ours, theirs = socket.socketpair()

    def serve() -> None:
        theirs.recv(4096)
        theirs.sendall(b'{"jsonrpc": "2.0", "id": 1, "error": {"code": -32012, "mess')
        theirs.close()

    server = threading.Thread(target=serve)
    server.start()
    try:
        with pytest.raises(DaemonUnavailable, match="closed the connection"):
            Client(ours).call("models.list")
    finally:
        server.join()
        ours.close()


# --- 6. what ggml's gguf_init_from_file refuses, we refuse ----------------------------------


def _layout(*tensors: T) -> list[T]:
    return list(tensors)


GGML_REFUSES: dict[str, tuple[Any, list[T], str]] = {
    "duplicate tensor names": (META, _layout(T("a.weight", (32,)), T("a.weight", (32,))), "twice"),
    "aliased offsets": (
        META,
        _layout(T("a.weight", (32,)), T("b.weight", (32,), offset=0)),
        "starts at byte 0 of the data, not 128",
    ),
    "overlapping offsets": (
        META,
        _layout(T("a.weight", (64,)), T("b.weight", (32,), offset=32)),
        "starts at byte 32 of the data, not 256",
    ),
    "unaligned offset": (
        META,
        _layout(T("a.weight", (32,)), T("b.weight", (32,), offset=132)),
        "aligned to 32 bytes",
    ),
    "rows not whole blocks": (
        META,
        _layout(T("a.weight", (48, 2), w.GGML_Q4_0, bytes(54))),
        "rows of 48",
    ),
    "unknown tensor type": (META, _layout(T("a.weight", (32,), 99, bytes(128))), "type99"),
    "removed tensor type": (META, _layout(T("a.weight", (32,), 4, bytes(128))), "Q4_2"),
    "repacked tensor type": (META, _layout(T("a.weight", (32,), 31, bytes(128))), "Q4_0_4_4"),
    "duplicate keys": ([("general.architecture", "llama")] * 2, TENSORS, "twice"),
    "empty key": ([("", "llama")], TENSORS, "is 0 bytes long"),
    "array of arrays": (
        {**META, "x": Typed(w.ARRAY, [Typed(w.ARRAY, [1], w.U8)], w.ARRAY)},
        TENSORS,
        "arrays in arrays",
    ),
    "alignment zero": ({**META, "general.alignment": 0}, TENSORS, "alignment"),
    "alignment three": ({**META, "general.alignment": 3}, TENSORS, "alignment"),
    "tensor name of 64 bytes": (META, _layout(T("n" * 64, (32,))), "is 64 bytes long"),
}


@pytest.mark.parametrize("case", list(GGML_REFUSES))
def test_what_ggml_refuses_is_refused(tmp_path: Path, ggml: GGMLParser, case: str) -> None:
    metadata, tensors, why = GGML_REFUSES[case]
    path = w.write(tmp_path / "m.gguf", metadata, tensors)
    verdict = ggml.verdict(path)
    assert verdict.outcome == "refused", verdict  # the case is what ggml refuses
    assert why in refused(path)


@pytest.mark.parametrize("ggml_type", [w.GGML_IQ2_XXS, w.GGML_TQ1_0, w.GGML_MXFP4])
def test_newer_tensor_types_are_bounds_checked(tmp_path: Path, ggml_type: int) -> None:
    shape = (256, 4)
    whole = w.write(tmp_path / "whole.gguf", META, [T("a.weight", shape, ggml_type)])
    assert read_gguf(whole).tensors[0].shape == shape
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(whole.read_bytes()[: -w.nbytes(shape, ggml_type) // 2])
    assert "past the end" in refused(cut)


def test_a_zero_dimension_beside_a_huge_one_is_refused(tmp_path: Path) -> None:
    path = w.write(tmp_path / "z.gguf", META, [T("a.weight", (0, 1 << 40), data=b"")])
    assert "impossible shape" in refused(path)


def test_a_gap_between_tensors_is_refused(tmp_path: Path, ggml: GGMLParser) -> None:
    path = w.write(
        tmp_path / "gap.gguf", META, [T("a.weight", (32,)), T("b.weight", (8,), offset=256)]
    )
    assert not ggml.verdict(path).accepted
    assert "gaps" in refused(path)
