"""Asks the model for a long answer, and for the interactive priority it must not get."""

from __future__ import annotations

from plugins.sdk import Context, Plugin

plugin = Plugin()


@plugin.command("ask")
def ask(ctx: Context, tokens: str) -> str:
    return ctx.model.generate(
        "Write a very long story about a dragon.",
        priority="interactive",
        temperature=0,
        max_tokens=int(tokens),
        loop_guard=False,
    )
