"""Chat templates render as Hugging Face renders them, for every catalog family."""

from __future__ import annotations

from datetime import datetime

import pytest

from daemon.engine.prompt import render
from tests.daemon.engine.tiny_models import FAMILIES

CHAT = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Fix: i has a cat"},
]


def specials(arch: str) -> dict[str, str]:
    family = FAMILIES[arch]
    return {"bos_token": family.bos or "", "eos_token": family.eos}


def test_qwen3_is_asked_to_skip_its_thinking() -> None:
    text = render(FAMILIES["qwen3"].template, CHAT, specials("qwen3"))
    assert text.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")


def test_llama_3_2_dates_its_system_prompt_today() -> None:
    text = render(FAMILIES["llama"].template, CHAT, specials("llama"))
    assert text.startswith("<|begin_of_text|><|start_header_id|>system<|end_header_id|>")
    assert f"Today Date: {datetime.now().strftime('%d %b %Y')}" in text
    assert "Be brief.<|eot_id|>" in text
    assert text.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")


def test_gemma_3_folds_the_system_prompt_into_the_first_turn() -> None:
    text = render(FAMILIES["gemma3"].template, CHAT, specials("gemma3"))
    assert text == (
        "<bos><start_of_turn>user\nBe brief.\n\nFix: i has a cat<end_of_turn>\n"
        "<start_of_turn>model\n"
    )


def test_a_template_that_refuses_the_messages_says_why() -> None:
    twice = [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]
    with pytest.raises(ValueError, match="roles must alternate"):
        render(FAMILIES["gemma3"].template, twice, specials("gemma3"))


def test_qwen2_5_brings_its_default_system_prompt() -> None:
    text = render(FAMILIES["qwen2"].template, CHAT[1:], specials("qwen2"))
    assert text.startswith("<|im_start|>system\nYou are Qwen, created by Alibaba Cloud.")


def test_phi_3_5_turns_end_with_its_end_token() -> None:
    text = render(FAMILIES["phi3"].template, CHAT, specials("phi3"))
    assert (
        text == "<|system|>\nBe brief.<|end|>\n<|user|>\nFix: i has a cat<|end|>\n<|assistant|>\n"
    )
