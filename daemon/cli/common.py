"""What every command shares: the paths, a connected client, streaming with Ctrl+C."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from daemon.client import Client, connect
from daemon.paths import Paths


def paths() -> Paths:
    return Paths.from_env()


def client() -> Client:
    return connect(paths())


def options(args: argparse.Namespace) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    for key in ("temperature", "top_p", "max_tokens", "seed", "engine"):
        value = getattr(args, key, None)
        if value is not None:
            opts[key] = value
    if getattr(args, "stop", None):
        opts["stop"] = args.stop
    return opts


def stream(client: Client, method: str, params: dict[str, Any]) -> dict[str, Any]:
    """Send a streaming request, print deltas as they come; Ctrl+C cancels it."""
    rid = client.send(method, params)

    def show(_: str, p: dict[str, Any]) -> None:
        sys.stdout.write(p["text"])
        sys.stdout.flush()

    while True:
        try:
            result: dict[str, Any] = client.wait(rid, show)
            break
        except KeyboardInterrupt:
            client.cancel(rid)  # then keep reading: the answer ends as cancelled
    if not result["text"].endswith("\n"):
        sys.stdout.write("\n")
    if result["finish_reason"] == "cancelled":
        print("[cancelled]", file=sys.stderr)
    return result


def generation_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-m", "--model", help="model name (default: the built-in model)")
    p.add_argument("--engine", choices=["auto", "llamacpp", "mlx"], help="engine for this request")
    p.add_argument("--temperature", type=float, help="0 = deterministic; default 0.2")
    p.add_argument("--top-p", type=float, dest="top_p")
    p.add_argument("--max-tokens", type=int, dest="max_tokens", help="stop after N tokens")
    p.add_argument("--seed", type=int, help="seed for reproducible sampling")
    p.add_argument("--stop", action="append", help="stop at this string (repeatable)")
