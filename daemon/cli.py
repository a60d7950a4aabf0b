"""The `hearth` command. Every command talks to the daemon, starting it when needed."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from typing import Any

from daemon import __version__
from daemon.client import Client, connect
from daemon.config import Config
from daemon.errors import DaemonUnavailable, HearthError
from daemon.paths import Paths


def _paths() -> Paths:
    return Paths.from_env()


def _client(args: argparse.Namespace) -> Client:
    return connect(_paths())


def _options(args: argparse.Namespace) -> dict[str, Any]:
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


def cmd_chat(args: argparse.Namespace) -> int:
    client = _client(args)
    history: list[dict[str, str]] = []
    if args.system:
        history.append({"role": "system", "content": args.system})
    base = {"model": args.model, "options": _options(args)}
    if args.prompt:
        history.append({"role": "user", "content": " ".join(args.prompt)})
        stream(client, "chat", {**base, "messages": history})
        return 0
    model = client.call("models.list").get("default")
    print(f"Hearth {__version__} · {args.model or model} · Ctrl+C stops an answer, "
          "Ctrl+C again (or Ctrl+D) quits.", file=sys.stderr)  # fmt: skip
    while True:
        try:
            line = input("› ")
        except (EOFError, KeyboardInterrupt):
            print(file=sys.stderr)
            return 0
        if not line.strip():
            continue
        history.append({"role": "user", "content": line})
        result = stream(client, "chat", {**base, "messages": history})
        history.append({"role": "assistant", "content": result["text"]})


def cmd_rewrite(args: argparse.Namespace) -> int:
    client = _client(args)
    if args.list:
        for preset in client.call("rewrite.presets")["presets"]:
            print(f"{preset['name']:<14} {preset['instruction']}")
        return 0
    text = " ".join(args.text) if args.text else sys.stdin.read()
    params = {"text": text, "preset": args.preset, "model": args.model, "options": _options(args)}
    stream(client, "rewrite", params)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    paths = _paths()
    try:
        client = Client.connect(paths.socket)
    except DaemonUnavailable:
        if args.json:
            print(json.dumps({"running": False, "socket": str(paths.socket)}))
        else:
            print(f"Hearth daemon: not running (socket {paths.socket})")
        return 3
    status = client.call("status")
    if args.json:
        print(json.dumps(status, indent=2))
        return 0
    print(f"Hearth daemon {status['version']} · pid {status['pid']} · engine {status['engine']}")
    print(f"socket   {status['socket']}")
    loaded = ", ".join(f"{r['model']} ({r['engine']}, pid {r['pid']})" for r in status["runners"])
    print(f"loaded   {loaded or 'nothing'}")
    print(f"queue    {status['queue']} waiting")
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    client = connect(_paths())
    print(f"Hearth daemon running (pid {client.call('status')['pid']})")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    paths = _paths()
    try:
        client = Client.connect(paths.socket)
    except DaemonUnavailable:
        print("Hearth daemon is not running")
        return 0
    pid = int(client.call("status")["pid"])
    client.close()
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and paths.socket.exists():
        time.sleep(0.05)
    print(f"Hearth daemon stopped (pid {pid})")
    return 0


def cmd_daemon(args: argparse.Namespace) -> int:
    from daemon.main import StartupError, run

    paths = _paths()
    try:
        config = Config.load(paths.config_file)
    except ValueError as exc:
        raise SystemExit(f"hearth: bad config: {exc}") from exc
    try:
        run(paths, config, verbose=args.verbose)
    except StartupError as exc:
        print(f"hearth: {exc}", file=sys.stderr)
        return 1
    return 0


def _size(n: int) -> str:
    return f"{n / 1e6:.0f} MB" if n < 1e9 else f"{n / 1e9:.1f} GB"


def cmd_models(args: argparse.Namespace) -> int:
    client = _client(args)
    if args.action == "list":
        listing = client.call("models.list")
        if args.json:
            print(json.dumps(listing["models"], indent=2))
            return 0
        print(f"{'NAME':<34} {'FORMAT':<6} {'QUANT':<7} {'SIZE':>7} {'CONTEXT':>7}  SHA256")
        for m in listing["models"]:
            mark = "*" if m["name"] == listing["default"] else " "
            size = _size(m["size"])
            print(f"{m['name'] + mark:<34} {m['format']:<6} {m['quantization']:<7} "
                  f"{size:>7} {m['context_length']:>7}  {m['sha256'][:12]}")  # fmt: skip
        return 0
    if args.action == "import":
        info = client.call("models.import", {"path": os.path.abspath(args.target)})
        print(f"imported {info['name']} ({info['format']}, {info['quantization']})")
    elif args.action == "rm":
        info = client.call("models.rm", {"model": args.target})
        print(f"removed {info['name']}")
    elif args.action == "load":
        info = client.call("models.load", {"model": args.target, "engine": args.engine})
        print(f"loaded {info['model']} on {info['engine']} (runner pid {info['pid']})")
    elif args.action == "unload":
        client.call("models.unload", {"model": args.target})
        print(f"unloaded {args.target}")
    return 0


def _generation_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-m", "--model", help="model name (default: the built-in model)")
    p.add_argument("--engine", choices=["auto", "llamacpp", "mlx"], help="engine for this request")
    p.add_argument("--temperature", type=float, help="0 = deterministic; default 0.7")
    p.add_argument("--top-p", type=float, dest="top_p")
    p.add_argument("--max-tokens", type=int, dest="max_tokens", help="stop after N tokens")
    p.add_argument("--seed", type=int, help="seed for reproducible sampling")
    p.add_argument("--stop", action="append", help="stop at this string (repeatable)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hearth",
        description="A private assistant that runs a language model on this computer. "
        "Nothing you type leaves the machine.",
    )
    parser.add_argument("--version", action="version", version=f"hearth {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("chat", help="chat with the model (no prompt: interactive)")
    p.add_argument("prompt", nargs="*", help="a one-shot prompt; omit for an interactive chat")
    p.add_argument("--system", help="a system prompt")
    _generation_flags(p)
    p.set_defaults(func=cmd_chat)

    p = sub.add_parser("rewrite", help="rewrite text with a preset (reads stdin without TEXT)")
    p.add_argument("text", nargs="*", help="the text to rewrite; omit to read stdin")
    p.add_argument("-p", "--preset", default="rewrite", help="preset name (see --list)")
    p.add_argument("--list", action="store_true", help="list the presets and exit")
    _generation_flags(p)
    p.set_defaults(func=cmd_rewrite)

    p = sub.add_parser("status", help="show whether the daemon runs and what it has loaded")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("models", help="list, import, remove, load or unload models")
    p.add_argument("action", choices=["list", "import", "rm", "load", "unload"])
    p.add_argument("target", nargs="?", help="a model name, or a GGUF file / MLX folder to import")
    p.add_argument("--json", action="store_true", help="machine-readable list")
    p.add_argument("--engine", choices=["auto", "llamacpp", "mlx"], help="engine for load")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("daemon", help="run the daemon in the foreground")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.set_defaults(func=cmd_daemon)
    sub.add_parser("up", help="start the daemon in the background").set_defaults(func=cmd_up)
    sub.add_parser("down", help="stop the background daemon").set_defaults(func=cmd_down)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "models" and args.action != "list" and not args.target:
        parser.error(f"models {args.action} needs a model name or path")
    try:
        return int(args.func(args))
    except HearthError as exc:
        print(f"hearth: {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
