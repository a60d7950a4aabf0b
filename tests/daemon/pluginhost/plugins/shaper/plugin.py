"""ctx.model.generate and ctx.model.chat with format=: values back, or a typed error."""

from __future__ import annotations

from typing import Any

from plugins.sdk import Context, HearthError, Plugin

plugin = Plugin()

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 16},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
    },
    "required": ["name", "age"],
    "additionalProperties": False,
}


@plugin.command("person")
def person(ctx: Context, text: str) -> Any:
    value = ctx.model.generate(text, format=PERSON, temperature=0, max_tokens=64)
    return {"value": value, "type": type(value).__name__}


@plugin.command("any")
def any_object(ctx: Context, text: str) -> Any:
    messages = [{"role": "user", "content": text}]
    value = ctx.model.chat(messages, format="json", temperature=0, max_tokens=200)
    return {"value": value, "type": type(value).__name__}


@plugin.command("short")
def short(ctx: Context, text: str) -> Any:
    try:
        return ctx.model.generate(text, format=PERSON, temperature=0, max_tokens=3)
    except HearthError as exc:
        return {"kind": exc.kind, "reason": exc.data.get("reason")}


@plugin.command("plain")
def plain(ctx: Context, text: str) -> Any:
    value = ctx.model.generate(text, temperature=0, max_tokens=4)
    return {"value": value, "type": type(value).__name__}
