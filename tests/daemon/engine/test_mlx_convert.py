"""Converting a GGUF file into an MLX model folder."""

from __future__ import annotations

import json
from pathlib import Path

import mlx.core  # noqa: F401  - the suite needs MLX (mlx[cpu] on Linux)
import pytest

from daemon.engine.backend import Sampling
from daemon.engine.convert import convert_gguf_to_mlx
from daemon.engine.mlx import load
from daemon.errors import InvalidModel, InvalidParams
from tests.daemon.engine.conftest_mlx import (
    GGML_F32,
    GGML_Q4_1,
    GGML_Q4_K,
    default_gguf,
    tiny_llama_metadata,
    tiny_llama_tensors,
    write_gguf,
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return convert_gguf_to_mlx(default_gguf(), tmp_path_factory.mktemp("models") / "smollm2")


def test_the_folder_is_an_mlx_lm_model_that_keeps_the_quantization(folder: Path) -> None:
    from mlx_lm.utils import load_model

    assert sorted(p.name for p in folder.iterdir()) == [
        "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
    ]  # fmt: skip
    assert [p.name for p in folder.parent.iterdir()] == ["smollm2"]  # no temporary left over
    config = json.loads((folder / "config.json").read_text())
    assert config["quantization"] == {
        "group_size": 32, "bits": 4, "mode": "affine",
        "model.embed_tokens": {"group_size": 32, "bits": 8},
    }  # fmt: skip
    size = (folder / "model.safetensors").stat().st_size  # the same blocks, not dequantized
    assert size < 1.05 * default_gguf().stat().st_size
    model, _ = load_model(folder)  # stock mlx-lm opens it
    assert type(model).__module__ == "mlx_lm.models.llama"


def test_the_folder_carries_the_template_and_special_tokens(folder: Path) -> None:
    tokenizer_config = json.loads((folder / "tokenizer_config.json").read_text())
    assert tokenizer_config["bos_token"] == "<|im_start|>"
    assert tokenizer_config["eos_token"] == "<|im_end|>"
    converted, original = load(folder, n_ctx=512), load(default_gguf(), n_ctx=512)
    assert converted.chat_template() == original.chat_template() is not None
    assert converted.special_tokens() == original.special_tokens()
    text = "<|im_start|>user\nCafé 🌞 12345<|im_end|>\n"
    assert converted.tokenize(text) == original.tokenize(text)


@pytest.mark.parametrize("ggml_type", [GGML_F32, GGML_Q4_1])
def test_a_small_model_converts_and_generates_as_the_gguf_does(
    tmp_path: Path, ggml_type: int
) -> None:
    gguf = write_gguf(
        tmp_path / "tiny.gguf", tiny_llama_metadata(), tiny_llama_tensors(ggml_type, seed=1)
    )
    folder = convert_gguf_to_mlx(gguf, tmp_path / "tiny")
    greedy = Sampling(temperature=0)
    expected = [t.id for t in load(gguf, n_ctx=12).generate([1, 2], greedy)]
    assert len(expected) == 12 - 2 + 1
    assert [t.id for t in load(folder, n_ctx=12).generate([1, 2], greedy)] == expected


def test_an_existing_folder_is_never_overwritten(folder: Path) -> None:
    before = (folder / "config.json").read_bytes()
    with pytest.raises(InvalidParams, match="already exists"):
        convert_gguf_to_mlx(default_gguf(), folder)
    assert (folder / "config.json").read_bytes() == before


def test_an_unsupported_gguf_is_refused_and_leaves_nothing_behind(tmp_path: Path) -> None:
    gguf = write_gguf(tmp_path / "k.gguf", tiny_llama_metadata(), tiny_llama_tensors(GGML_Q4_K))
    with pytest.raises(InvalidModel, match="Q4_K"):
        convert_gguf_to_mlx(gguf, tmp_path / "out" / "k")
    assert not (tmp_path / "out").exists()
