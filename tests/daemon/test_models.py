"""Model registry: the default model without configuration, import checks, removal."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from daemon.engine.gguf import read_gguf
from daemon.engine.registry import Registry, default_model_path
from daemon.errors import InvalidModel, InvalidParams, ModelNotFound

DEFAULT = default_model_path()


def test_the_default_model_is_found_without_configuration(tmp_path: Path) -> None:
    models = Registry(tmp_path / "models").list()
    assert [m.name for m in models] == ["smollm2-135m-instruct.q4_1"]
    model = models[0]
    assert model.builtin and model.format == "gguf" and model.quantization == "Q4_1"
    assert model.context_length == 8192 and model.architecture == "llama"
    assert len(model.sha256) == 64 and model.size > 50_000_000
    assert Registry(tmp_path / "models").resolve(None).name == model.name


def test_gguf_header_of_the_default_model_reads_cleanly() -> None:
    assert DEFAULT
    info = read_gguf(DEFAULT)
    assert info.version == 3 and len(info.tensors) == 272
    assert info.chat_template and "im_start" in info.chat_template


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"", "magic"),
        (b"not a model at all, just some text" * 10, "magic"),
        (b"GGUF" + (7).to_bytes(4, "little") + bytes(16), "version 7"),
        (
            b"GGUF" + (3).to_bytes(4, "little") + (10**9).to_bytes(8, "little") + bytes(8),
            "implausible",
        ),
    ],
)
def test_garbage_files_are_refused_with_a_reason(tmp_path: Path, content: bytes, why: str) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(content)
    with pytest.raises(InvalidModel) as err:
        Registry(tmp_path / "models").import_file(bad)
    assert why in err.value.message
    assert not (tmp_path / "models" / "bad.gguf").exists()


@pytest.mark.parametrize("keep", [1000, 2_000_000, 60_000_000])
def test_a_truncated_model_is_refused(tmp_path: Path, keep: int) -> None:
    assert DEFAULT
    cut = tmp_path / "cut.gguf"
    with DEFAULT.open("rb") as src:
        cut.write_bytes(src.read(keep))
    with pytest.raises(InvalidModel) as err:
        read_gguf(cut)
    assert "truncated" in err.value.message or "ends early" in err.value.message


def test_import_copies_a_valid_model_and_rm_removes_it(tmp_path: Path) -> None:
    assert DEFAULT
    source = tmp_path / "My-Model.Q4_1.gguf"
    shutil.copyfile(DEFAULT, source)
    registry = Registry(tmp_path / "models")
    info = registry.import_file(source)
    assert info.name == "my-model.q4_1" and not info.builtin
    assert {m.name for m in registry.list()} == {"smollm2-135m-instruct.q4_1", "my-model.q4_1"}
    with pytest.raises(InvalidParams):
        registry.import_file(source)  # same name twice
    registry.remove("my-model.q4_1")
    with pytest.raises(ModelNotFound):
        registry.resolve("my-model.q4_1")
    with pytest.raises(InvalidParams):
        registry.remove("smollm2-135m-instruct.q4_1")  # the built-in stays
