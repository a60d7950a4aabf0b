"""Which GGUF files the MLX engine accepts, and the tokenizer it rebuilds from them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from daemon.engine.gguf import GGUFInfo, read_gguf
from daemon.engine.mlx_gguf import check_mlx_gguf, gguf_tokenizer, mlx_config
from daemon.errors import InvalidModel
from tests.daemon.engine.conftest_mlx import (
    GGML_Q4_1,
    GGML_Q4_K,
    default_gguf,
    tiny_llama_metadata,
    tiny_llama_tensors,
    write_gguf,
)

TEXTS = [
    "<|im_start|>user\nRewrite more politely: give me the report now.<|im_end|>\n",
    "Écris un poème sur l'été 🌞 et les cafés au lait.",
    "def fib(n):\n    return 12345 + 3.14159  ",
    "  multiple   spaces\n\n\ttabs 2024-01-01 it's I'm they'll <|im_end|> done",
    "日本語のテキスト、中文。 😀👍🏽",
]


def _mlx() -> ModuleType:
    """The MLX backend module, imported only by the tests that run MLX."""
    from daemon.engine import mlx

    return mlx


@pytest.fixture(scope="module")
def info() -> GGUFInfo:
    return read_gguf(default_gguf(), keep_arrays=True)


def test_the_default_model_is_accepted_with_its_shape_and_quantization(info: GGUFInfo) -> None:
    check_mlx_gguf(info)
    config = mlx_config(info)
    assert (config["num_hidden_layers"], config["hidden_size"]) == (30, 576)
    assert (config["num_attention_heads"], config["num_key_value_heads"]) == (9, 3)
    assert config["tie_word_embeddings"] is True  # the file has no output.weight
    assert config["quantization"]["bits"] == 4
    assert config["quantization"]["model.embed_tokens"] == {"group_size": 32, "bits": 8}
    assert config["eos_token_id"] == [0, 2]  # <|endoftext|> and <|im_end|>


def test_the_check_needs_no_vocabulary() -> None:
    check_mlx_gguf(read_gguf(default_gguf()))  # what the daemon reads: arrays skipped


def test_tiny_q4_1_model_is_accepted(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "tiny.gguf", tiny_llama_metadata(), tiny_llama_tensors(GGML_Q4_1))
    check_mlx_gguf(read_gguf(path))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"general.architecture": "mamba"}, "architecture 'mamba' is not supported"),
        ({"tokenizer.ggml.model": "llama"}, "tokenizer 'llama' is not supported"),
        ({"tokenizer.ggml.pre": "deepseek-coder"}, "pre-tokenizer 'deepseek-coder'"),
        ({"llama.rope.scaling.type": "yarn"}, "RoPE scaling 'yarn'"),
        ({"llama.block_count": 2}, "blk.1.attn_k.weight is missing"),
    ],
)
def test_unsupported_models_are_refused_with_the_reason(
    tmp_path: Path, overrides: dict[str, object], message: str
) -> None:
    metadata = tiny_llama_metadata(**overrides)
    if overrides.get("general.architecture") == "mamba":
        metadata = {k.replace("llama.", "mamba."): v for k, v in metadata.items()}
    path = write_gguf(tmp_path / "bad.gguf", metadata, tiny_llama_tensors())
    with pytest.raises(InvalidModel, match="cannot run on the MLX engine") as caught:
        check_mlx_gguf(read_gguf(path))
    assert message in caught.value.message
    assert "llama.cpp engine" in caught.value.message


def test_k_quants_are_refused_naming_the_supported_types(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "k.gguf", tiny_llama_metadata(), tiny_llama_tensors(GGML_Q4_K))
    with pytest.raises(InvalidModel, match="is Q4_K, a type MLX cannot load") as caught:
        check_mlx_gguf(read_gguf(path))
    assert "Q4_0, Q4_1, Q8_0" in caught.value.message
    with pytest.raises(InvalidModel, match="Q4_K"):
        _mlx().load(path, n_ctx=64)


def test_an_extra_tensor_is_refused(tmp_path: Path) -> None:
    tensors = [*tiny_llama_tensors(), ("rope_freqs.weight", (32,), 0, bytes(128))]
    path = write_gguf(tmp_path / "x.gguf", tiny_llama_metadata(), tensors)
    with pytest.raises(InvalidModel, match=r"unexpected tensor rope_freqs\.weight"):
        check_mlx_gguf(read_gguf(path))


def test_a_truncated_copy_of_the_default_model_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cut.gguf"
    with default_gguf().open("rb") as src, path.open("wb") as dst:
        shutil.copyfileobj(src, dst)
        dst.truncate(default_gguf().stat().st_size // 2)
    with pytest.raises(InvalidModel, match="truncated"):
        _mlx().load(path, n_ctx=256)


def test_tokenizer_matches_llama_cpp(info: GGUFInfo) -> None:
    import llama_cpp

    tokenizer = gguf_tokenizer(info)
    llm = llama_cpp.Llama(str(default_gguf()), n_ctx=256, verbose=False, vocab_only=True)
    for text in TEXTS:
        expected = llm.tokenize(text.encode(), add_bos=False, special=True)
        assert tokenizer.encode(text) == expected, text
        assert tokenizer.tokenizer.decode(expected, skip_special_tokens=False) == text


def test_special_tokens_and_template_come_from_the_metadata(info: GGUFInfo) -> None:
    tokenizer = gguf_tokenizer(info)
    assert tokenizer.special_tokens() == {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>"}
    assert tokenizer.chat_template is not None and "<|im_start|>" in tokenizer.chat_template
    assert tokenizer.encode("<|im_start|>user") == [1, 4093]  # parsed, no BOS added


def test_a_huge_block_count_is_refused_in_bounded_time_and_memory(tmp_path: Path) -> None:
    metadata = tiny_llama_metadata(**{"llama.block_count": 2**32 - 1})
    path = write_gguf(tmp_path / "blocks.gguf", metadata, tiny_llama_tensors())
    cap = 512 << 20  # the check once built a set of 9 x block_count names: 4.3 GB and counting
    script = (
        "import resource, sys\n"
        f"resource.setrlimit(resource.RLIMIT_AS, ({cap}, {cap}))\n"
        "from daemon.engine.gguf import read_gguf\n"
        "from daemon.engine.mlx_gguf import check_mlx_gguf\n"
        "from daemon.errors import InvalidModel\n"
        "try:\n"
        f"    check_mlx_gguf(read_gguf({str(path)!r}))\n"
        "except InvalidModel as exc:\n"
        "    print(exc.message)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "block_count is 4294967295" in out.stdout and "512" in out.stdout


@pytest.mark.parametrize(
    ("tensors", "message"),
    [
        ([("blk.7.attn_q.weight", (32, 32), 0, bytes(4096))], "unexpected tensor blk.7.attn_q"),
        ([("blk.00000000000000000001.attn_q.weight", (32,), 0, bytes(128))], "unexpected tensor"),
    ],
)
def test_block_tensors_are_checked_by_pattern_against_block_count(
    tmp_path: Path, tensors: list[tuple[str, tuple[int, ...], int, bytes]], message: str
) -> None:
    path = write_gguf(tmp_path / "x.gguf", tiny_llama_metadata(), tiny_llama_tensors() + tensors)
    with pytest.raises(InvalidModel, match=message):
        check_mlx_gguf(read_gguf(path))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {
                "tokenizer.ggml.tokens": ["<s>", "a", "b", "ab", "ba"],
                "tokenizer.ggml.token_type": [3, 1, 1, 1, 1],
            },
            "the vocabulary has 5 tokens but token_embd.weight has 4 rows",
        ),
        ({"tokenizer.ggml.bos_token_id": 4}, "bos_token_id is 4, past the 4-token vocabulary"),
        ({"tokenizer.ggml.eos_token_id": 1000}, "eos_token_id is 1000"),
    ],
)
def test_every_token_must_have_an_embedding_row(
    tmp_path: Path, overrides: dict[str, object], message: str
) -> None:
    path = write_gguf(
        tmp_path / "v.gguf", tiny_llama_metadata(**overrides), tiny_llama_tensors(seed=1)
    )
    with pytest.raises(InvalidModel, match="cannot run on the MLX engine") as caught:
        check_mlx_gguf(read_gguf(path))
    assert message in caught.value.message
    with pytest.raises(InvalidModel, match=message):  # the runner checks again when it loads
        _mlx().load(path, n_ctx=64)


def test_a_vocabulary_listing_a_token_twice_is_refused(tmp_path: Path) -> None:
    metadata = tiny_llama_metadata(**{"tokenizer.ggml.tokens": ["<s>", "a", "a", "ab"]})
    path = write_gguf(tmp_path / "d.gguf", metadata, tiny_llama_tensors())
    with pytest.raises(InvalidModel, match="lists the token 'a' twice"):
        gguf_tokenizer(read_gguf(path, keep_arrays=True))
