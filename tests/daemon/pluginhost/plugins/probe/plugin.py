"""Records what triggered it in its data dir; stores, notifies, and tries what it may not."""

from __future__ import annotations

from typing import Any

from plugins.sdk import Context, FileEvent, PermissionDenied, Plugin

plugin = Plugin()


def note(ctx: Context, name: str, line: str) -> None:
    with open(ctx.data_dir / name, "a") as fh:
        fh.write(line + "\n")


@plugin.on_file("~/inbox", patterns=["*.txt"], debounce=0.5)
def arrived(ctx: Context, event: FileEvent) -> None:
    note(ctx, "seen.txt", f"{event.kind} {event.path.name}")


@plugin.every("1s")
def tick(ctx: Context) -> None:
    note(ctx, "ticks.txt", ctx.trigger)


@plugin.on_hotkey("ctrl+alt+p")
def hot(ctx: Context) -> str:
    """Say hot"""
    return "hot"


@plugin.command("remember")
def remember(ctx: Context, key: str, value: str) -> list[str]:
    ctx.storage[key] = {"value": value}
    return ctx.storage.keys()


@plugin.command("recall")
def recall(ctx: Context, key: str) -> Any:
    return ctx.storage.get(key, "(nothing)")


@plugin.command("shout")
def shout(ctx: Context, text: str) -> str:
    ctx.notify("Probe", text)
    ctx.log.warning(f"shouted {text}")
    return "ok"


@plugin.command("think")
def think(ctx: Context) -> str:
    return ctx.model.generate("hello")  # no model permission


@plugin.command("clip")
def clip(ctx: Context) -> str:
    try:
        return ctx.clipboard.read()
    except PermissionDenied as exc:
        return f"refused: {exc.kind}"
