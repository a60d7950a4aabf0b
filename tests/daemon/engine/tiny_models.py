"""Tiny random-weight models of every catalog architecture, as GGUF files and MLX folders.

The catalog's models cannot be downloaded here, so the tests write small ones of the same
architectures: GGUF files with gguf-py (llama.cpp's own writer), MLX folders with
mlx-lm's own model classes. Each gets the family's chat template and special tokens on a
real byte-level BPE vocabulary (the first 2,048 tokens of the default model's, merges
included), so templates, special tokens and stop tokens go through the same code as the
real models'.

``forced`` models answer the end-of-turn token first, whatever the prompt: attention and
MLP outputs are zero, so the last position's hidden state is its token's embedding, whose
first component is positive; the final norm keeps only that component; and the end token
has the largest first component of all output rows. A reply that ends at once, with no
text, shows the engine stops on that family's token. Unforced models are plain random.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

from daemon.engine.gguf import read_gguf
from tests.daemon.engine.conftest_mlx import default_gguf

VOCAB = 2048
EMBED, HEADS, KV_HEADS, HEAD_DIM, FFN, LAYERS = 64, 4, 2, 16, 128, 2
CONTROL, NORMAL = 3, 1

QWEN25 = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. "
    "You are a helpful assistant.<|im_end|>\\n' }}{%- endif %}"
    "{%- for message in messages %}"
    "{%- if (message.role == 'user') or (message.role == 'system' and not loop.first) "
    "or (message.role == 'assistant' and not message.tool_calls) %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}"
    "{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}\n"
)
QWEN3 = (
    "{%- if messages[0].role == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}{%- endif %}"
    "{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}"
    "{%- for message in messages[::-1] %}{%- set index = (messages|length - 1) - loop.index0 %}"
    "{%- if ns.multi_step_tool and message.role == 'user' and not "
    "(message.content.startswith('<tool_response>')) %}"
    "{%- set ns.multi_step_tool = false %}{%- set ns.last_query_index = index %}"
    "{%- endif %}{%- endfor %}"
    "{%- for message in messages %}"
    "{%- if (message.role == 'user') or (message.role == 'system' and not loop.first) %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}"
    "{%- elif message.role == 'assistant' %}{%- set content = message.content %}"
    "{%- if '</think>' in content %}"
    "{%- set content = content.split('</think>')[-1].lstrip('\\n') %}{%- endif %}"
    "{{- '<|im_start|>' + message.role + '\\n' + content + '<|im_end|>\\n' }}"
    "{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}"
    "{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}{%- endif %}"
)
LLAMA32 = (
    "{{- bos_token }}"
    "{%- if not date_string is defined %}{%- if strftime_now is defined %}"
    '{%- set date_string = strftime_now("%d %b %Y") %}'
    '{%- else %}{%- set date_string = "26 Jul 2024" %}{%- endif %}{%- endif %}'
    "{%- if messages[0]['role'] == 'system' %}"
    "{%- set system_message = messages[0]['content']|trim %}"
    "{%- set messages = messages[1:] %}"
    '{%- else %}{%- set system_message = "" %}{%- endif %}'
    '{{- "<|start_header_id|>system<|end_header_id|>\\n\\n" }}'
    '{{- "Cutting Knowledge Date: December 2023\\n" }}'
    '{{- "Today Date: " + date_string + "\\n\\n" }}'
    '{{- system_message }}{{- "<|eot_id|>" }}'
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' "
    "+ message['content'] | trim + '<|eot_id|>' }}{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"
)
GEMMA3 = (
    "{{ bos_token }}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- set first_user_prefix = messages[0]['content'] + '\\n\\n' -%}"
    "{%- set loop_messages = messages[1:] -%}"
    '{%- else -%}{%- set first_user_prefix = "" -%}{%- set loop_messages = messages -%}'
    "{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}"
    '{{ raise_exception("Conversation roles must alternate user/assistant/user/assistant/...") }}'
    "{%- endif -%}"
    "{%- if (message['role'] == 'assistant') -%}{%- set role = \"model\" -%}"
    "{%- else -%}{%- set role = message['role'] -%}{%- endif -%}"
    "{{ '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else \"\") }}"
    "{{ message['content'] | trim }}{{ '<end_of_turn>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{'<start_of_turn>model\\n'}}{%- endif -%}"
)
PHI35 = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' and message['content'] %}"
    "{{'<|system|>\\n' + message['content'] + '<|end|>\\n'}}"
    "{% elif message['role'] == 'user' %}{{'<|user|>\\n' + message['content'] + '<|end|>\\n'}}"
    "{% elif message['role'] == 'assistant' %}"
    "{{'<|assistant|>\\n' + message['content'] + '<|end|>\\n'}}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% else %}{{ eos_token }}{% endif %}"
)


@dataclass(frozen=True)
class Family:
    """What a catalog family's model files say about their tokens and template."""

    arch: str  # the GGUF architecture
    mlx_type: str  # the mlx-lm model_type
    template: str
    specials: tuple[str, ...]  # control tokens added after the base vocabulary
    bos: str | None
    eos: str  # tokenizer.ggml.eos_token_id / tokenizer_config's eos_token
    end: str  # the token a reply ends with (EOS, or an end-of-turn token)
    eot: str | None = None  # tokenizer.ggml.eot_token_id, where the family's files set one
    # special tokens that swallow the whitespace after them (Phi-3's tokenizer.json says
    # rstrip for these; llama.cpp does the same for phi-3 files)
    rstrip: frozenset[str] = frozenset()


FAMILIES = {
    "qwen2": Family("qwen2", "qwen2", QWEN25, (), "<|endoftext|>", "<|im_end|>", "<|im_end|>"),
    "qwen3": Family(
        "qwen3", "qwen3", QWEN3, ("<think>", "</think>"), None, "<|im_end|>", "<|im_end|>"
    ),
    "llama": Family(
        "llama",
        "llama",
        LLAMA32,
        (
            "<|begin_of_text|>",
            "<|end_of_text|>",
            "<|start_header_id|>",
            "<|end_header_id|>",
            "<|eot_id|>",
            "<|eom_id|>",
        ),
        "<|begin_of_text|>",
        "<|eot_id|>",
        "<|eot_id|>",
    ),
    "gemma3": Family(
        "gemma3",
        "gemma3_text",
        GEMMA3,
        ("<bos>", "<eos>", "<start_of_turn>", "<end_of_turn>"),
        "<bos>",
        "<eos>",
        "<end_of_turn>",
        eot="<end_of_turn>",
    ),
    "phi3": Family(
        "phi3",
        "phi3",
        PHI35,
        # Phi-3.5's SentencePiece specials too: llama.cpp looks them up in phi-3 files
        ("<unk>", "<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"),
        None,
        "<|endoftext|>",
        "<|end|>",
        rstrip=frozenset(
            {
                "</s>",
                "<|system|>",
                "<|user|>",
                "<|assistant|>",
                "<|end|>",
                "<|im_start|>",
                "<|im_end|>",
            }
        ),
    ),
}
ARCHS = tuple(FAMILIES)


@dataclass(frozen=True)
class Vocab:
    tokens: list[str]
    types: list[int]
    merges: list[str]

    def id(self, text: str) -> int:
        return self.tokens.index(text)


def vocab(family: Family) -> Vocab:
    """The default model's first VOCAB tokens (and the merges among them), plus the
    family's control tokens."""
    md = read_gguf(default_gguf(), keep_arrays=True).metadata
    tokens = list(md["tokenizer.ggml.tokens"][:VOCAB])
    types = list(md["tokenizer.ggml.token_type"][:VOCAB])
    known = set(tokens)
    merges = [
        m
        for m in md["tokenizer.ggml.merges"]
        if m.replace(" ", "", 1) in known and all(p in known for p in m.split(" ", 1))
    ]
    for special in family.specials:
        if special not in known:
            tokens.append(special)
            types.append(CONTROL)
    return Vocab(tokens, types, merges)


def hf_tokenizer(v: Vocab, family: Family) -> Tokenizer:
    """The same vocabulary as a `tokenizers` tokenizer (what an MLX folder's tokenizer.json
    holds): byte-level BPE, digits split one by one, as the default model's."""
    tok = Tokenizer(models.BPE({t: i for i, t in enumerate(v.tokens)},
                               [tuple(m.split(" ", 1)) for m in v.merges]))  # fmt: skip
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True),
         pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )  # fmt: skip
    tok.decoder = decoders.ByteLevel()
    controls = [t for t, kind in zip(v.tokens, v.types, strict=True) if kind == CONTROL]
    tok.add_tokens(
        [AddedToken(t, special=True, normalized=False, rstrip=t in family.rstrip) for t in controls]
    )
    return tok


def _weights(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    return (rng.standard_normal(shape) * 0.05).astype(np.float32)


def _embeddings(v: Vocab, family: Family, forced: bool, rng: np.random.Generator) -> np.ndarray:
    embed = _weights((len(v.tokens), EMBED), rng)
    if forced:
        embed[:, 0] = 1.0
        embed[v.id(family.end), 0] = 5.0
    return embed


def write_gguf(path: Path, arch: str, *, forced: bool = False, seed: int = 0) -> Path:
    """A tiny ``arch`` GGUF at ``path`` (F32 weights, 2 layers)."""
    import gguf

    family = FAMILIES[arch]
    v = vocab(family)
    rng = np.random.default_rng(seed)
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_name(f"tiny-{arch}")
    writer.add_context_length(2048)
    writer.add_embedding_length(EMBED)
    writer.add_block_count(LAYERS)
    writer.add_feed_forward_length(FFN)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(KV_HEADS)
    writer.add_key_length(HEAD_DIM)
    writer.add_value_length(HEAD_DIM)
    writer.add_rope_dimension_count(HEAD_DIM)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-6)
    if arch == "gemma3":
        writer.add_sliding_window(512)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("smollm")
    writer.add_token_list(v.tokens)
    writer.add_token_types(v.types)
    writer.add_token_merges(v.merges)
    writer.add_eos_token_id(v.id(family.eos))
    if family.bos is not None:
        writer.add_bos_token_id(v.id(family.bos))
    if family.eot is not None:
        writer.add_eot_token_id(v.id(family.eot))
    writer.add_add_bos_token(False)
    writer.add_chat_template(family.template)

    q, kv = HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM
    embed = _embeddings(v, family, forced, rng)
    norm = np.ones(EMBED, dtype=np.float32)
    out_norm = np.eye(1, EMBED, dtype=np.float32)[0] if forced else norm
    tensors: dict[str, np.ndarray] = {"token_embd.weight": embed, "output_norm.weight": out_norm}
    if arch != "gemma3":  # gemma's output is its embedding, like the real files
        tensors["output.weight"] = embed.copy() if forced else _weights(embed.shape, rng)
    for i in range(LAYERS):
        blk = f"blk.{i}."
        zero_out = np.zeros((EMBED, q), dtype=np.float32)
        zero_down = np.zeros((EMBED, FFN), dtype=np.float32)
        layer = {
            "attn_norm.weight": norm,
            "attn_output.weight": zero_out if forced else _weights((EMBED, q), rng),
            "ffn_norm.weight": norm,
            "ffn_down.weight": zero_down if forced else _weights((EMBED, FFN), rng),
        }
        if arch == "phi3":
            layer["attn_qkv.weight"] = _weights((q + 2 * kv, EMBED), rng)
            layer["ffn_up.weight"] = _weights((2 * FFN, EMBED), rng)
        else:
            layer.update(
                {
                    "attn_q.weight": _weights((q, EMBED), rng),
                    "attn_k.weight": _weights((kv, EMBED), rng),
                    "attn_v.weight": _weights((kv, EMBED), rng),
                    "ffn_gate.weight": _weights((FFN, EMBED), rng),
                    "ffn_up.weight": _weights((FFN, EMBED), rng),
                }
            )
        if arch == "qwen2":
            for name, size in (("attn_q", q), ("attn_k", kv), ("attn_v", kv)):
                layer[f"{name}.bias"] = _weights((size,), rng)
        if arch in ("qwen3", "gemma3"):
            layer["attn_q_norm.weight"] = np.ones(HEAD_DIM, dtype=np.float32)
            layer["attn_k_norm.weight"] = np.ones(HEAD_DIM, dtype=np.float32)
        if arch == "gemma3":
            layer["post_attention_norm.weight"] = norm
            layer["post_ffw_norm.weight"] = norm
        tensors.update({blk + name: array for name, array in layer.items()})
    for name, array in tensors.items():
        writer.add_tensor(name, np.ascontiguousarray(array))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _mlx_config(arch: str, family: Family, v: Vocab) -> dict[str, Any]:
    config: dict[str, Any] = {
        "model_type": family.mlx_type,
        "hidden_size": EMBED,
        "num_hidden_layers": LAYERS,
        "intermediate_size": FFN,
        "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS,
        "head_dim": HEAD_DIM,
        "rms_norm_eps": 1e-6,
        "vocab_size": len(v.tokens),
        "max_position_embeddings": 2048,
        "rope_theta": 10000.0,
        "eos_token_id": v.id(family.eos),
    }
    if arch == "gemma3":
        # a sliding layer, then a global one (gemma-3-1b: 5 then 1, over 26 layers)
        config.update(query_pre_attn_scalar=HEAD_DIM, sliding_window=512, sliding_window_pattern=2,
                      eos_token_id=[v.id("<eos>"), v.id("<end_of_turn>")])  # fmt: skip
    else:
        config["tie_word_embeddings"] = False
    if arch == "llama":  # Llama 3.2's config lists every end token
        config["eos_token_id"] = [v.id("<|end_of_text|>"), v.id("<|eom_id|>"), v.id("<|eot_id|>")]
    return config


def write_mlx(folder: Path, arch: str, *, forced: bool = False, seed: int = 0) -> Path:
    """A tiny ``arch`` MLX model folder made with mlx-lm's own model class."""
    import importlib

    import mlx.core as mx
    from mlx.utils import tree_flatten

    family = FAMILIES[arch]
    v = vocab(family)
    config = _mlx_config(arch, family, v)
    module = importlib.import_module(f"mlx_lm.models.{family.mlx_type}")
    names = set(module.ModelArgs.__dataclass_fields__)
    model = module.Model(module.ModelArgs(**{k: x for k, x in config.items() if k in names}))
    rng = np.random.default_rng(seed)
    embed = _embeddings(v, family, forced, rng)
    # gemma's RMSNorm scales by 1 + weight; the others by the weight itself
    one = 0.0 if arch == "gemma3" else 1.0
    weights: dict[str, Any] = {}
    for name, param in tree_flatten(model.parameters()):
        shape = tuple(param.shape)
        if name == "model.embed_tokens.weight":
            array = embed
        elif name == "lm_head.weight":
            array = embed.copy() if forced else _weights(shape, rng)
        elif name == "model.norm.weight" and forced:
            array = np.eye(1, EMBED, dtype=np.float32)[0] - 1.0 + one
        elif "norm" in name:
            array = np.full(shape, one, dtype=np.float32)
        elif forced and name.endswith(("o_proj.weight", "down_proj.weight")):
            array = np.zeros(shape, dtype=np.float32)
        else:
            array = _weights(shape, rng)
        weights[name] = mx.array(array)
    folder.mkdir(parents=True)
    mx.save_safetensors(str(folder / "model.safetensors"), weights)
    (folder / "config.json").write_text(json.dumps(config, indent=1))
    hf_tokenizer(v, family).save(str(folder / "tokenizer.json"))
    tokenizer_config: dict[str, Any] = {"eos_token": family.eos, "chat_template": family.template}
    if family.bos is not None:
        tokenizer_config["bos_token"] = family.bos
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=1))
    return folder
