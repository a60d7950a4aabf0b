"""Convert a llama-family GGUF file into an MLX model folder, keeping its quantization.

The folder is what mlx-lm itself writes (config.json with quantization, one
model.safetensors, tokenizer.json, tokenizer_config.json), so `mlx_lm.load` and
any MLX tool can open it. The weights are the GGUF's own blocks, re-labelled, not
re-quantized: the folder generates the same tokens as the GGUF file. Everything is
written into a temporary sibling folder and renamed into place at the end, so an
interrupted conversion never leaves a half-written model behind.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from daemon.engine.gguf import read_gguf
from daemon.engine.mlx_gguf import build_llama, gguf_tokenizer, gguf_weights, mlx_config
from daemon.errors import EngineUnavailable, InvalidParams


def convert_gguf_to_mlx(gguf_path: Path, out_dir: Path) -> Path:
    """Write an MLX model folder at out_dir (which must not exist yet); return out_dir."""
    try:
        import mlx.core as mx
    except ImportError as exc:
        raise EngineUnavailable(
            "converting to MLX needs the MLX engine: install hearth with the 'mlx-cpu' extra"
        ) from exc

    out_dir = Path(out_dir)
    if out_dir.exists():
        raise InvalidParams(f"{out_dir} already exists; remove it or pick another folder")
    info = read_gguf(Path(gguf_path), keep_arrays=True)
    config = mlx_config(info)  # raises InvalidModel for a GGUF that MLX cannot run
    tokenizer = gguf_tokenizer(info)
    weights = gguf_weights(info, config)
    build_llama(config, weights)  # proves the weights fit the config before anything is written
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        mx.save_safetensors(str(tmp / "model.safetensors"), weights, metadata={"format": "mlx"})
        tokenizer.tokenizer.save(str(tmp / "tokenizer.json"))
        tokenizer_config: dict[str, Any] = {
            "tokenizer_class": "PreTrainedTokenizerFast",
            "bos_token": tokenizer.bos_token,
            "eos_token": tokenizer.eos_token,
            "add_bos_token": False,
            "clean_up_tokenization_spaces": False,
            "model_max_length": config["max_position_embeddings"],
        }
        if tokenizer.chat_template is not None:
            tokenizer_config["chat_template"] = tokenizer.chat_template
        _write_json(tmp / "config.json", config)
        _write_json(tmp / "tokenizer_config.json", tokenizer_config)
        tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
