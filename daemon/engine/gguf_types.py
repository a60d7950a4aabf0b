"""What the numbers in a GGUF file mean: tensor types, file types, and metadata kinds.

The tensor table is ggml's own (`type_traits` in ggml.c, llama.cpp as vendored by
llama-cpp-python 0.3.36): a type whose block size is 0 was removed from ggml, and a
type missing here is unknown to it; ggml's `gguf_init_from_file` refuses both, and so
do we. `KEY_KINDS` says what each metadata value that Hearth or llama.cpp interprets
must be, so a file whose `general.file_type` is a string is refused when it is read,
not later by whatever code first calls `int()` on it. Add a row there when a new key
gets interpreted (a new architecture's hyperparameters, say).
"""

from __future__ import annotations

# ggml type -> (name, elements per block, bytes per block); block 0: removed from ggml
TENSOR_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("F32", 1, 4), 1: ("F16", 1, 2), 2: ("Q4_0", 32, 18), 3: ("Q4_1", 32, 20),
    4: ("Q4_2", 0, 0), 5: ("Q4_3", 0, 0), 6: ("Q5_0", 32, 22), 7: ("Q5_1", 32, 24),
    8: ("Q8_0", 32, 34), 9: ("Q8_1", 32, 36), 10: ("Q2_K", 256, 84), 11: ("Q3_K", 256, 110),
    12: ("Q4_K", 256, 144), 13: ("Q5_K", 256, 176), 14: ("Q6_K", 256, 210),
    15: ("Q8_K", 256, 292), 16: ("IQ2_XXS", 256, 66), 17: ("IQ2_XS", 256, 74),
    18: ("IQ3_XXS", 256, 98), 19: ("IQ1_S", 256, 50), 20: ("IQ4_NL", 32, 18),
    21: ("IQ3_S", 256, 110), 22: ("IQ2_S", 256, 82), 23: ("IQ4_XS", 256, 136),
    24: ("I8", 1, 1), 25: ("I16", 1, 2), 26: ("I32", 1, 4), 27: ("I64", 1, 8),
    28: ("F64", 1, 8), 29: ("IQ1_M", 256, 56), 30: ("BF16", 1, 2),
    31: ("Q4_0_4_4", 0, 0), 32: ("Q4_0_4_8", 0, 0), 33: ("Q4_0_8_8", 0, 0),
    34: ("TQ1_0", 256, 54), 35: ("TQ2_0", 256, 66), 36: ("IQ4_NL_4_4", 0, 0),
    37: ("IQ4_NL_4_8", 0, 0), 38: ("IQ4_NL_8_8", 0, 0), 39: ("MXFP4", 32, 17),
    40: ("NVFP4", 64, 36), 41: ("Q1_0", 128, 18), 42: ("Q2_0", 64, 18),
}  # fmt: skip

# llama.cpp's general.file_type (llama_ftype) -> the quantization name users know
FILE_TYPES: dict[int, str] = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
    11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S",
    17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS",
    23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S",
    29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 36: "TQ1_0", 37: "TQ2_0",
    38: "MXFP4_MOE", 39: "NVFP4", 40: "Q1_0", 41: "Q2_0",
}  # fmt: skip

# GGUF metadata value types
U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)
INTEGERS = frozenset({U8, I8, U16, I16, U32, I32, U64, I64})
REALS = frozenset({F32, F64})
VALUE_TYPE_NAMES = (
    "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64",
)  # fmt: skip

# What a kind accepts, said in an error message.
KINDS = {
    "u32": "a u32",
    "count": "a non-negative integer",
    "counts": "a non-negative integer or an array of them (one per layer)",
    "real": "a finite number",
    "name": "a string of at most 128 characters",
    "text": "a string of at most 1 MiB",
    "flag": "a bool",
    "strings": "an array of strings",
    "ints": "an array of integers",
    "reals": "an array of numbers",
}
MAX_NAME_CHARS = 128

# Metadata key -> kind. "{arch}" is general.architecture; "*" matches any run of characters.
KEY_KINDS: dict[str, str] = {
    "general.architecture": "name",
    "general.alignment": "u32",
    "general.file_type": "count",
    "general.quantization_version": "count",
    "general.name": "text",
    "{arch}.vocab_size": "count",
    "{arch}.context_length": "count",
    "{arch}.embedding_length": "count",
    "{arch}.block_count": "count",
    "{arch}.feed_forward_length": "counts",
    "{arch}.attention.head_count": "counts",
    "{arch}.attention.head_count_kv": "counts",
    "{arch}.attention.key_length": "count",
    "{arch}.attention.value_length": "count",
    "{arch}.attention.layer_norm_epsilon": "real",
    "{arch}.attention.layer_norm_rms_epsilon": "real",
    "{arch}.rope.dimension_count": "count",
    "{arch}.rope.freq_base": "real",
    "{arch}.rope.scaling.type": "name",
    "{arch}.rope.scaling.factor": "real",
    "tokenizer.ggml.model": "name",
    "tokenizer.ggml.pre": "name",
    "tokenizer.ggml.tokens": "strings",
    "tokenizer.ggml.token_type": "ints",
    "tokenizer.ggml.scores": "reals",
    "tokenizer.ggml.merges": "strings",
    "tokenizer.ggml.*_token_id": "count",
    "tokenizer.ggml.add_*_token": "flag",
    "tokenizer.chat_template": "text",
}


def tensor_type_name(ggml_type: int) -> str:
    return TENSOR_TYPES[ggml_type][0] if ggml_type in TENSOR_TYPES else f"type{ggml_type}"
