"""Chat messages to prompt text, with the model's own Jinja chat template."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from jinja2.sandbox import ImmutableSandboxedEnvironment

# ChatML: the fallback for models that ship no template.
CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _raise(message: str) -> None:
    raise ValueError(message)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


def render(template: str | None, messages: list[dict[str, str]], specials: dict[str, str]) -> str:
    """Render like Hugging Face's apply_chat_template(add_generation_prompt=True), with the
    same helpers (Llama 3.2's template dates its system prompt with strftime_now).

    ``enable_thinking`` is false: Hearth wants the answer itself, so a model with a
    thinking mode (Qwen3) is asked to skip it, as its template allows.
    """
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
    )
    env.globals["raise_exception"] = _raise
    env.globals["strftime_now"] = _strftime_now
    compiled = env.from_string(template or CHATML)
    context: dict[str, Any] = {
        "messages": messages,
        "add_generation_prompt": True,
        "enable_thinking": False,
        **specials,
    }
    return compiled.render(**context)
