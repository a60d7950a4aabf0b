"""Chat messages to prompt text, with the model's own Jinja chat template."""

from __future__ import annotations

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


def render(template: str | None, messages: list[dict[str, str]], specials: dict[str, str]) -> str:
    """Render like Hugging Face's apply_chat_template(add_generation_prompt=True)."""
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
    )
    env.globals["raise_exception"] = _raise
    compiled = env.from_string(template or CHATML)
    context: dict[str, Any] = {"messages": messages, "add_generation_prompt": True, **specials}
    return compiled.render(**context)
