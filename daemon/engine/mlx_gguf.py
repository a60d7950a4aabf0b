"""Run a llama-family GGUF file on MLX as it is, without converting it first.

MLX reads GGUF itself and keeps Q4_0 / Q4_1 / Q8_0 blocks as its own affine
quantized weights (group size 32), so the model runs with the very bits llama.cpp
uses. What this module adds: `check_mlx_gguf`, which refuses a file MLX cannot run
before any weight is read (and imports no MLX, so the daemon can call it); the
mlx-lm config and weight names for llama.cpp's tensors; and the tokenizer, rebuilt
from the GGUF vocabulary. llama.cpp stores Q and K rows permuted for its RoPE
layout; we put them back in Hugging Face order, so the model is a plain mlx-lm
llama and the converter writes exactly these weights and config.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers

from daemon.engine.gguf import GGUFInfo, shorten
from daemon.engine.mlx_tokenizer import EOG_TEXTS, TextTokenizer
from daemon.errors import InvalidModel

if TYPE_CHECKING:
    import mlx.core as mx
    from mlx.nn.layers.base import Module

SUPPORTED_ARCHITECTURES = ("llama",)
MAX_BLOCKS = 512  # llama.cpp's LLAMA_MAX_LAYERS
SUPPORTED_TYPES = {0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 8: "Q8_0"}
_QUANT_BITS = {2: 4, 3: 4, 8: 8}
GROUP_SIZE = 32
_CONTROL, _USER_DEFINED = 3, 4

# llama.cpp's name for each per-block tensor -> the module path in mlx-lm's llama model
_BLOCK_TENSORS = {
    "attn_norm": "input_layernorm", "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj",
    "ffn_norm": "post_attention_layernorm", "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj",
}  # fmt: skip
_TOP_TENSORS = {
    "token_embd": "model.embed_tokens",
    "output_norm": "model.norm",
    "output": "lm_head",
}
_REQUIRED_TOP = ("token_embd", "output_norm")
# Tensors with a row per token: MLX looks rows up unchecked, so the vocabulary must fit
_VOCAB_ROWS = ("token_embd.weight", "output.weight")

# GGUF pre-tokenizer names -> how text is split before byte-level BPE (as llama.cpp does)
_LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_GPT2_PRE = ("gpt2", "mpt", "olmo", "jais")
_DIGITS_PRE = ("smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva")
_LLAMA3_PRE = ("llama-bpe", "llama3", "smaug-bpe")
SUPPORTED_PRE_TOKENIZERS = (*_GPT2_PRE, *_DIGITS_PRE, *_LLAMA3_PRE)


def _fail(info: GGUFInfo, why: str) -> InvalidModel:
    # Why not grow this path to qwen2, qwen3, gemma3 and phi3: the catalog's GGUF files are
    # K-quants (Q4_K_M), which MLX's GGUF reader cannot load whatever the architecture, and
    # every catalog model has an MLX folder of its own, quantized for MLX.
    return InvalidModel(
        f"{info.path.name} cannot run on the MLX engine: {why}. "
        "Use the llama.cpp engine for it, which runs every GGUF model; on MLX, use an MLX "
        "model folder of the same model (for a catalog model: "
        "`hearth models pull NAME --format mlx`).",
        path=str(info.path),
    )


def _parts(gguf_name: str) -> tuple[int | None, str] | None:
    """(block, llama.cpp part) of a tensor name, block None for top-level ones; else None."""
    stem, _, suffix = gguf_name.rpartition(".")
    if suffix != "weight":
        return None
    if stem in _TOP_TENSORS:
        return None, stem
    parts = stem.split(".")
    if (
        len(parts) == 3
        and parts[0] == "blk"
        and parts[1].isdigit()
        and len(parts[1]) <= 4
        and parts[2] in _BLOCK_TENSORS
    ):
        return int(parts[1]), parts[2]
    return None


def mlx_name(gguf_name: str) -> str | None:
    """The mlx-lm parameter name for a llama.cpp tensor name, or None if it has none."""
    found = _parts(gguf_name)
    if found is None:
        return None
    block, part = found
    if block is None:
        return f"{_TOP_TENSORS[part]}.weight"
    return f"model.layers.{block}.{_BLOCK_TENSORS[part]}.weight"


def _int(info: GGUFInfo, key: str, default: int | None = None) -> int:
    value = info.metadata.get(f"{info.architecture}.{key}", default)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise _fail(info, f"metadata {info.architecture}.{key} is missing or not a positive int")
    return value


def check_mlx_gguf(info: GGUFInfo) -> None:
    """Raise InvalidModel unless MLX can run this GGUF: architecture, tensors, tokenizer.

    Work is bounded by the tensor count, never by a count the metadata claims."""
    if info.architecture not in SUPPORTED_ARCHITECTURES:
        raise _fail(
            info,
            f"architecture {shorten(info.architecture)} is not supported "
            f"(supported: {', '.join(SUPPORTED_ARCHITECTURES)})",
        )
    blocks = _int(info, "block_count")
    if blocks > min(MAX_BLOCKS, len(info.tensors)):
        raise _fail(
            info,
            f"{info.architecture}.block_count is {blocks}, more than the file's "
            f"{len(info.tensors)} tensors or llama.cpp's limit of {MAX_BLOCKS}",
        )
    found: set[tuple[int | None, str]] = set()
    for tensor in info.tensors:
        if tensor.type not in SUPPORTED_TYPES:
            raise _fail(
                info,
                f"tensor {tensor.name} is {tensor.type_name}, a type MLX cannot load "
                f"(supported: {', '.join(SUPPORTED_TYPES.values())}; K-quants are not)",
            )
        parts = _parts(tensor.name)
        if parts is None:
            raise _fail(info, f"unexpected tensor {tensor.name} (not a plain llama model)")
        if parts[0] is not None and parts[0] >= blocks:
            raise _fail(info, f"unexpected tensor {tensor.name} (more blocks than block_count?)")
        found.add(parts)
    for part in _REQUIRED_TOP:
        if (None, part) not in found:
            raise _fail(info, f"tensor {part}.weight is missing")
    if len(found) != len(_REQUIRED_TOP) + blocks * len(_BLOCK_TENSORS) + (
        (None, "output") in found
    ):
        block, part = next(
            (b, p) for b in range(blocks) for p in sorted(_BLOCK_TENSORS) if (b, p) not in found
        )
        raise _fail(info, f"tensor blk.{block}.{part}.weight is missing")
    heads = _int(info, "attention.head_count")
    head_dim = _int(info, "attention.key_length", _int(info, "embedding_length") // heads)
    if _int(info, "rope.dimension_count", head_dim) != head_dim:
        raise _fail(info, "partial rotary embeddings are not supported")
    scaling = info.metadata.get(f"{info.architecture}.rope.scaling.type", "none")
    if scaling not in ("none", "linear"):
        raise _fail(
            info, f"RoPE scaling {shorten(str(scaling))} is not supported (none, linear are)"
        )
    model = info.metadata.get("tokenizer.ggml.model")
    if model != "gpt2":
        raise _fail(info, f"tokenizer {shorten(str(model))} is not supported (gpt2-style BPE is)")
    pre = info.metadata.get("tokenizer.ggml.pre", "gpt2")
    if pre not in SUPPORTED_PRE_TOKENIZERS:
        raise _fail(info, f"pre-tokenizer {shorten(str(pre))} is not supported")
    _check_vocabulary(info)


def _check_vocabulary(info: GGUFInfo) -> None:
    """One embedding row per token, and every special token among them.

    MLX does not bounds-check an embedding lookup: a token id past the last row reads
    whatever memory follows and the model prints garbage, with no error."""
    tokens = info.metadata.get("tokenizer.ggml.tokens")
    if tokens is None:
        raise _fail(info, "it has no vocabulary (tokenizer.ggml.tokens)")
    for tensor in info.tensors:
        if tensor.name in _VOCAB_ROWS and (
            len(tensor.shape) != 2 or tensor.shape[1] != len(tokens)
        ):
            raise _fail(
                info,
                f"the vocabulary has {len(tokens)} tokens but {tensor.name} has "
                f"{tensor.shape[-1]} rows: they must match",
            )
    for key, value in info.metadata.items():
        if key.startswith("tokenizer.ggml.") and key.endswith("_token_id") and value >= len(tokens):
            raise _fail(info, f"{key} is {value}, past the {len(tokens)}-token vocabulary")


def mlx_config(info: GGUFInfo) -> dict[str, Any]:
    """The config.json mlx-lm would write for this model, quantization included."""
    check_mlx_gguf(info)
    md, arch = info.metadata, info.architecture
    heads = _int(info, "attention.head_count")
    embd = next(t for t in info.tensors if t.name == "token_embd.weight")
    config: dict[str, Any] = {
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "hidden_size": _int(info, "embedding_length"),
        "num_hidden_layers": _int(info, "block_count"),
        "intermediate_size": _int(info, "feed_forward_length"),
        "num_attention_heads": heads,
        "num_key_value_heads": _int(info, "attention.head_count_kv", heads),
        "head_dim": _int(info, "attention.key_length", _int(info, "embedding_length") // heads),
        "rms_norm_eps": float(md.get(f"{arch}.attention.layer_norm_rms_epsilon", 1e-5)),
        "rope_theta": float(md.get(f"{arch}.rope.freq_base", 10000.0)),
        "max_position_embeddings": info.context_length,
        "vocab_size": embd.shape[-1],
        "tie_word_embeddings": all(t.name != "output.weight" for t in info.tensors),
        "bos_token_id": md.get("tokenizer.ggml.bos_token_id"),
        "eos_token_id": sorted(_eog_ids(info)),
    }
    if md.get(f"{arch}.rope.scaling.type") == "linear":
        config["rope_scaling"] = {
            "type": "linear",
            "factor": float(md[f"{arch}.rope.scaling.factor"]),
        }
    bits = {mlx_name(t.name): _QUANT_BITS[t.type] for t in info.tensors if t.type in _QUANT_BITS}
    if bits:
        common = max(set(bits.values()), key=list(bits.values()).count)
        quant: dict[str, Any] = {"group_size": GROUP_SIZE, "bits": common, "mode": "affine"}
        for name, b in sorted(bits.items()):
            if b != common and name is not None:
                quant[name.removesuffix(".weight")] = {"group_size": GROUP_SIZE, "bits": b}
        config["quantization"] = config["quantization_config"] = quant
    return config


def _eog_ids(info: GGUFInfo) -> set[int]:
    md = info.metadata
    ids = {md.get(f"tokenizer.ggml.{k}_token_id") for k in ("eos", "eot", "eom")}
    tokens, types = md.get("tokenizer.ggml.tokens"), md.get("tokenizer.ggml.token_type")
    if isinstance(tokens, list) and isinstance(types, list):
        ids |= {i for i, t in enumerate(tokens) if t in EOG_TEXTS and types[i] == _CONTROL}
    return {i for i in ids if isinstance(i, int)}


def gguf_tokenizer(info: GGUFInfo) -> TextTokenizer:
    """Rebuild the model's BPE tokenizer from GGUF metadata (read with keep_arrays=True)."""
    check_mlx_gguf(info)
    md = info.metadata
    tokens, types, merges = (
        md.get(f"tokenizer.ggml.{k}") for k in ("tokens", "token_type", "merges")
    )
    if not (isinstance(tokens, list) and isinstance(merges, list)):
        raise _fail(info, "the vocabulary or merges are missing (read with keep_arrays=True)")
    types = types if isinstance(types, list) and len(types) == len(tokens) else [1] * len(tokens)
    pre = md.get("tokenizer.ggml.pre", "gpt2")
    vocab = {t: i for i, t in enumerate(tokens)}
    if len(vocab) != len(tokens):
        twice = next(t for i, t in enumerate(tokens) if vocab[t] != i)
        raise _fail(info, f"the vocabulary lists the token {shorten(twice)} twice")
    cuts = [m.find(" ", 1) for m in merges]  # where llama.cpp splits a merge
    if -1 in cuts:
        bad = merges[cuts.index(-1)]
        raise _fail(info, f"the merge {shorten(bad)} is not two tokens separated by a space")
    pairs = [(m[:cut], m[cut + 1 :]) for m, cut in zip(merges, cuts, strict=True)]
    tokenizer = Tokenizer(models.BPE(vocab, pairs, ignore_merges=pre in _LLAMA3_PRE))
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=pre not in _LLAMA3_PRE)
    split: list[Any] = []
    if pre in _DIGITS_PRE:
        split = [pre_tokenizers.Digits(individual_digits=True)]
    elif pre in _LLAMA3_PRE:
        split = [pre_tokenizers.Split(Regex(_LLAMA3_SPLIT), behavior="isolated")]
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([*split, byte_level])
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_tokens(
        [
            AddedToken(tokens[i], special=types[i] == _CONTROL, normalized=False)
            for i in range(len(tokens))
            if types[i] in (_CONTROL, _USER_DEFINED)
        ]
    )

    def text(key: str) -> str | None:
        index = md.get(f"tokenizer.ggml.{key}_token_id")
        return tokens[index] if isinstance(index, int) and 0 <= index < len(tokens) else None

    return TextTokenizer(
        tokenizer, frozenset(_eog_ids(info)), text("bos"), text("eos"), info.chat_template
    )


def _unpermute(array: mx.array, heads: int) -> mx.array:
    """Undo llama.cpp's Q/K row order (interleaved RoPE pairs) back to Hugging Face's halves."""
    rows = array.shape[0]
    return (
        array.reshape(heads, rows // heads // 2, 2, *array.shape[1:])
        .swapaxes(1, 2)
        .reshape(array.shape)
    )


def gguf_weights(info: GGUFInfo, config: dict[str, Any]) -> dict[str, mx.array]:
    """The model's weights under mlx-lm names, in Hugging Face layout (lazy MLX arrays)."""
    import mlx.core as mx

    loaded = mx.load(str(info.path))
    assert isinstance(loaded, dict)
    heads = {
        "attn_q": config["num_attention_heads"],
        "attn_k": config["num_key_value_heads"],
    }
    weights = {}
    for key, array in loaded.items():
        stem, _, part = key.rpartition(".")  # part: weight / scales / biases
        name = mlx_name(f"{stem}.weight")
        if name is None:
            raise _fail(info, f"MLX read an unexpected tensor {key}")
        kind = stem.rpartition(".")[2]
        weights[f"{name.removesuffix('.weight')}.{part}"] = (
            _unpermute(array, heads[kind]) if kind in heads else array
        )
    return weights


def build_llama(config: dict[str, Any], weights: dict[str, mx.array]) -> Module:
    """An mlx-lm llama model with each layer quantized as its weights are, weights loaded."""
    import mlx.core as mx
    from mlx.nn.layers.quantized import quantize
    from mlx_lm.models import llama

    names = {f.name for f in dataclasses.fields(llama.ModelArgs)}
    model = llama.Model(llama.ModelArgs(**{k: v for k, v in config.items() if k in names}))
    quant = config.get("quantization")
    if quant:
        default = {"group_size": quant["group_size"], "bits": quant["bits"]}

        def predicate(path: str, module: Module) -> Any:
            if not hasattr(module, "to_quantized") or f"{path}.scales" not in weights:
                return False
            return quant.get(path, default)

        quantize(model, class_predicate=predicate)
    try:
        model.load_weights(list(weights.items()), strict=True)
    except ValueError as exc:
        raise InvalidModel(f"the model's weights do not fit its config: {exc}") from exc
    mx.eval(model.parameters())
    return model
