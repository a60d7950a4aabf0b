"""Tokenizer for the MLX engine, the same class for GGUF files and MLX folders.

We use the `tokenizers` library directly rather than transformers' AutoTokenizer:
it needs no torch, reads only local files, and both model formats end up as one
`tokenizers.Tokenizer` (built from GGUF metadata, or read from tokenizer.json).
Chat templates are rendered by the runner; here we only carry the template text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer

from daemon.errors import InvalidModel

# End-of-generation token texts, the list llama.cpp also stops on, so both engines
# end a reply at the same token even when a model's metadata names only one EOS.
EOG_TEXTS = frozenset(
    {
        "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
        "<|eom_id|>", "<EOT>", "_<EOT>", "<|end_of_text|>", "<end_of_utterance>",
    }
)  # fmt: skip


@dataclass
class TextTokenizer:
    tokenizer: Tokenizer
    eog_ids: frozenset[int]
    bos_token: str | None
    eos_token: str | None
    chat_template: str | None

    def encode(self, text: str) -> list[int]:
        """Tokens of already-templated text: special tokens parsed, nothing added."""
        ids: list[int] = self.tokenizer.encode(text, add_special_tokens=False).ids
        return ids

    def special_tokens(self) -> dict[str, str]:
        found = {"bos_token": self.bos_token, "eos_token": self.eos_token}
        return {key: value for key, value in found.items() if value is not None}

    def decoder(self, context: list[int]) -> StreamingDecoder:
        return StreamingDecoder(self.tokenizer, context)


class StreamingDecoder:
    """Turns generated tokens into text one token at a time, never splitting a character.

    Decoding a small window (the last emitted tokens plus the new ones) and diffing
    it works for byte-level BPE and SentencePiece alike: an incomplete UTF-8
    sequence decodes to U+FFFD, and we hold it back until the character completes.
    A few prompt tokens seed the window so a leading space decodes as it would
    mid-sentence. Special tokens decode to "", as in the llama.cpp backend.
    """

    def __init__(self, tokenizer: Tokenizer, context: list[int]) -> None:
        self._tokenizer = tokenizer
        self._tokens = list(context[-4:])
        self._prefix = 0
        self._read = len(self._tokens)

    def _decode(self, tokens: list[int]) -> str:
        text: str = self._tokenizer.decode(tokens, skip_special_tokens=True)
        return text

    def add(self, token: int) -> str:
        self._tokens.append(token)
        before = self._decode(self._tokens[self._prefix : self._read])
        after = self._decode(self._tokens[self._prefix :])
        if len(after) <= len(before) or after.endswith("\ufffd"):
            return ""
        self._prefix, self._read = self._read, len(self._tokens)
        return after[len(before) :]


def _token_text(value: Any) -> str | None:
    """tokenizer_config.json stores special tokens as strings or as AddedToken dicts."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidModel(f"cannot read {path.name}: {exc}", path=str(path)) from exc
    return data if isinstance(data, dict) else {}


def _chat_template(folder: Path, config: dict[str, Any]) -> str | None:
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    template = config.get("chat_template") or _read_json(folder / "chat_template.json").get(
        "chat_template"
    )
    if isinstance(template, list):  # named templates: [{"name": "default", "template": ...}]
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default")
    return template if isinstance(template, str) else None


def _ids(value: Any) -> set[int]:
    if isinstance(value, int):
        return {value}
    if isinstance(value, list):
        return {v for v in value if isinstance(v, int)}
    return set()


def folder_tokenizer(folder: Path) -> TextTokenizer:
    """Read tokenizer.json plus the special tokens and template around it in an MLX folder."""
    path = folder / "tokenizer.json"
    if not path.is_file():
        raise InvalidModel(
            f"{folder.name} has no tokenizer.json (MLX models need the fast-tokenizer file)",
            path=str(folder),
        )
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises plain Exception on a bad file
        raise InvalidModel(f"cannot read {path}: {exc}", path=str(path)) from exc
    config = _read_json(folder / "tokenizer_config.json")
    bos, eos = _token_text(config.get("bos_token")), _token_text(config.get("eos_token"))
    eog = _ids(_read_json(folder / "config.json").get("eos_token_id"))
    eog |= _ids(_read_json(folder / "generation_config.json").get("eos_token_id"))
    for text in (eos, *EOG_TEXTS):
        token_id = tokenizer.token_to_id(text) if text else None
        if token_id is not None and (text == eos or _is_special(tokenizer, token_id)):
            eog.add(token_id)
    return TextTokenizer(tokenizer, frozenset(eog), bos, eos, _chat_template(folder, config))


def _is_special(tokenizer: Tokenizer, token_id: int) -> bool:
    added = tokenizer.get_added_tokens_decoder().get(token_id)
    return bool(added is not None and added.special)
