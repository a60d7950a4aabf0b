"""What every command shares: the paths, a connected client, streaming with Ctrl+C."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from daemon.client import Client, connect
from daemon.errors import HearthError
from daemon.paths import Paths


def paths() -> Paths:
    return Paths.from_env()


def client() -> Client:
    return connect(paths())


def options(args: argparse.Namespace) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    for key in ("temperature", "top_p", "max_tokens", "seed", "engine", "repeat_penalty"):
        value = getattr(args, key, None)
        if value is not None:
            opts[key] = value
    if getattr(args, "stop", None):
        opts["stop"] = args.stop
    if getattr(args, "no_loop_guard", False):
        opts["loop_guard"] = False
    if getattr(args, "background", False):
        opts["priority"] = "background"
    return opts


def stream(client: Client, method: str, params: dict[str, Any]) -> dict[str, Any]:
    """Send a streaming request, print deltas as they come; Ctrl+C cancels it. Says on
    stderr why an answer ended early."""
    rid = client.send(method, params)
    shown = ["\n"]  # the last character printed: an error must start on a line of its own

    def show(_: str, p: dict[str, Any]) -> None:
        sys.stdout.write(p["text"])
        sys.stdout.flush()
        shown[0] = p["text"][-1:] or shown[0]

    while True:
        try:
            result: dict[str, Any] = client.wait(rid, show)
            break
        except KeyboardInterrupt:
            client.cancel(rid)  # then keep reading: the answer ends as cancelled
        except HearthError:
            if shown[0] != "\n":
                sys.stdout.write("\n")
                sys.stdout.flush()
            raise
    if not result["text"].endswith("\n"):
        sys.stdout.write("\n")
        sys.stdout.flush()
    note = ENDINGS.get(result["finish_reason"])
    if note:
        print(note.format(n=result["tokens"].get("completion")), file=sys.stderr)
    return result


ENDINGS = {
    "cancelled": "[cancelled]",
    "length": "[stopped at the length limit ({n} tokens); --max-tokens sets another]",
    "repetition": "[stopped: the answer began to repeat itself]",
}


def context_notice(result: dict[str, Any]) -> str | None:
    """A line saying the oldest turns were left out of the prompt, if they were."""
    context = result.get("context") or {}
    dropped = int(context.get("dropped_turns", 0))
    if not dropped:
        return None
    turns = "turn was" if dropped == 1 else f"{dropped} turns were"
    return (
        f"[the conversation is longer than the model's context ({context.get('window')} "
        f"tokens): its oldest {turns} left out of this answer; all are still stored]"
    )


def generation_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-m", "--model", help="model name (default: the built-in model)")
    p.add_argument("--engine", choices=["auto", "llamacpp", "mlx"], help="engine for this request")
    p.add_argument("--temperature", type=float, help="0 = deterministic; default 0.2")
    p.add_argument("--top-p", type=float, dest="top_p")
    p.add_argument(
        "--max-tokens",
        type=int,
        dest="max_tokens",
        help="stop after N tokens (default: max_tokens in config.toml for a chat, "
        "a bound that follows the text for a rewrite)",
    )
    p.add_argument(
        "--repeat-penalty",
        type=float,
        dest="repeat_penalty",
        help="against loops: 1 = off, default 1.1 (repeat_penalty in config.toml)",
    )
    p.add_argument(
        "--no-loop-guard",
        action="store_true",
        dest="no_loop_guard",
        help="let an answer repeat itself (the guard ends one that cycles)",
    )
    p.add_argument(
        "--background",
        action="store_true",
        help="low priority: interactive requests (the tray, the hotkey) pause this one",
    )
    p.add_argument("--seed", type=int, help="seed for reproducible sampling")
    p.add_argument("--stop", action="append", help="stop at this string (repeatable)")
