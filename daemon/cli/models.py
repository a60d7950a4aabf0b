"""hearth models list | catalog | import | rm | load | unload | convert | pull."""

from __future__ import annotations

import argparse
import json
import os

from daemon.cli import catalog, common, pull


def _size(n: int) -> str:
    return f"{n / 1e6:.0f} MB" if n < 1e9 else f"{n / 1e9:.1f} GB"


def cmd_list(args: argparse.Namespace) -> int:
    listing = common.client().call("models.list")
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
    for skipped in listing.get("skipped", []):
        print(f"skipped {skipped['path']}: {skipped['reason']}\n"
              f"  (`hearth models rm {skipped['name']}` deletes it)")  # fmt: skip
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    info = common.client().call("models.import", {"path": os.path.abspath(args.path)})
    print(f"imported {info['name']} ({info['format']}, {info['quantization']})")
    return 0


def cmd_rm(args: argparse.Namespace) -> int:
    info = common.client().call("models.rm", {"model": args.model})
    print(f"removed {info['name']}")
    return 0


def cmd_load(args: argparse.Namespace) -> int:
    info = common.client().call("models.load", {"model": args.model, "engine": args.engine})
    print(f"loaded {info['model']} on {info['engine']} (runner pid {info['pid']})")
    return 0


def cmd_unload(args: argparse.Namespace) -> int:
    common.client().call("models.unload", {"model": args.model})
    print(f"unloaded {args.model}")
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    client = common.client()
    print(f"converting {args.model} to an MLX model folder…", flush=True)
    info = client.call("models.convert", {"model": args.model, "to": args.to})
    print(f"created {info['name']} ({info['format']}, {info['quantization']}) at {info['path']}")
    return 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("models", help="list, import, remove, load, unload, convert or pull models")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    a = actions.add_parser("list", help="the models Hearth knows, and which engine serves each")
    a.add_argument("--json", action="store_true", help="machine-readable list")
    a.set_defaults(func=cmd_list)
    a = actions.add_parser("catalog", help="models Hearth can download, and the one for here")
    a.add_argument("--json", action="store_true", help="machine-readable catalog")
    a.set_defaults(func=catalog.cmd_catalog)
    a = actions.add_parser("import", help="register a GGUF file or an MLX model folder")
    a.add_argument("path", help="a .gguf file or an MLX folder (config.json + safetensors)")
    a.set_defaults(func=cmd_import)
    a = actions.add_parser("rm", help="unload a model and delete Hearth's copy of it")
    a.add_argument("model", help="a name from `hearth models list`")
    a.set_defaults(func=cmd_rm)
    a = actions.add_parser("load", help="start a runner for a model now, not at the first chat")
    a.add_argument("model", help="a name from `hearth models list`, or default")
    a.add_argument("--engine", choices=["auto", "llamacpp", "mlx"], help="default: the config's")
    a.set_defaults(func=cmd_load)
    a = actions.add_parser("unload", help="stop a model's runner and free its memory")
    a.add_argument("model", help="a name from `hearth models list`")
    a.set_defaults(func=cmd_unload)
    a = actions.add_parser("convert", help="write an MLX model folder from a GGUF model")
    a.add_argument("model", help="a GGUF model's name, or default")
    a.add_argument("--to", choices=["mlx"], default="mlx", help="the target format (mlx)")
    a.set_defaults(func=cmd_convert)
    a = actions.add_parser("pull", help="download a catalog model, or a GGUF from a hub")
    pull.add_arguments(a)
    a.set_defaults(func=pull.cmd_pull)
