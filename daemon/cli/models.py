"""hearth models list | import | rm | load | unload | convert | pull."""

from __future__ import annotations

import argparse
import json
import os

from daemon.cli import common, pull


def _size(n: int) -> str:
    return f"{n / 1e6:.0f} MB" if n < 1e9 else f"{n / 1e9:.1f} GB"


def cmd_models(args: argparse.Namespace) -> int:
    if args.action == "pull":
        return pull.cmd_pull(args)
    if args.action != "list" and not args.target:
        raise SystemExit(f"hearth: models {args.action} needs a model name or path")
    client = common.client()
    if args.action == "list":
        listing = client.call("models.list")
        if args.json:
            print(json.dumps(listing["models"], indent=2))
            return 0
        print(f"{'NAME':<34} {'FORMAT':<6} {'QUANT':<7} {'SIZE':>7} {'CONTEXT':>7}  "
              f"{'ENGINE':<9} {'ALSO ON':<9} {'LOADED ON':<9}  SHA256")  # fmt: skip
        for m in listing["models"]:
            mark = "*" if m["name"] == listing["default"] else " "
            size = _size(m["size"])
            engine = m["engine"] or "none"  # the configured engine cannot run it
            also = ",".join(e for e in m["engines"] if e != m["engine"]) or "-"
            loaded = ",".join(m["loaded_on"]) or "-"
            print(f"{m['name'] + mark:<34} {m['format']:<6} {m['quantization']:<7} "
                  f"{size:>7} {m['context_length']:>7}  {engine:<9} {also:<9} {loaded:<9}  "
                  f"{m['sha256'][:12]}")  # fmt: skip
        print("* the default model. ENGINE serves it unless a request names another.")
    elif args.action == "import":
        info = client.call("models.import", {"path": os.path.abspath(args.target)})
        print(f"imported {info['name']} ({info['format']}, {info['quantization']})")
    elif args.action == "rm":
        info = client.call("models.rm", {"model": args.target})
        print(f"removed {info['name']}")
    elif args.action == "load":
        info = client.call("models.load", {"model": args.target, "engine": args.engine})
        print(f"loaded {info['model']} on {info['engine']} (runner pid {info['pid']})")
    elif args.action == "convert":
        if args.to != "mlx":
            raise SystemExit("hearth: models convert needs --to mlx")
        print(f"converting {args.target} to an MLX model folder…", flush=True)
        info = client.call("models.convert", {"model": args.target, "to": "mlx"})
        print(
            f"created {info['name']} ({info['format']}, {info['quantization']}) at {info['path']}"
        )
    elif args.action == "unload":
        client.call("models.unload", {"model": args.target})
        print(f"unloaded {args.target}")
    return 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("models", help="list, import, remove, load, unload, convert or pull models")
    p.add_argument("action", choices=["list", "import", "rm", "load", "unload", "convert", "pull"])
    p.add_argument("target", nargs="?", help="a model name, or a GGUF file / MLX folder to import")
    p.add_argument("--json", action="store_true", help="machine-readable list")
    p.add_argument("--engine", choices=["auto", "llamacpp", "mlx"], help="engine for load")
    p.add_argument("--to", choices=["mlx"], help="convert: the target format")
    pull.add_flags(p)  # models pull REPO [FILE] --sha256 --revision --endpoint
    p.set_defaults(func=cmd_models)
