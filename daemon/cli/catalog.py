"""hearth models catalog, and `hearth models pull NAME`: a catalog model, with consent."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from daemon.cli import common


def size(mb: float) -> str:
    return f"{mb:.0f} MB" if mb < 1000 else f"{mb / 1000:.1f} GB"


def license_text(model: dict[str, Any]) -> str:
    text = str(model["license"])
    if model["gated"]:
        text += " (gated)"
    elif model.get("license_note"):
        text += " (restricted)"
    return text


def cmd_catalog(args: argparse.Namespace) -> int:
    answer = common.client().call("models.catalog")
    if args.json:
        print(json.dumps(answer, indent=2))
        return 0
    machine = answer["machine"]
    fmt = machine["format"]
    print(f"{'NAME':<24} {'FAMILY':<10} {'PARAMS':>6} {'DOWNLOAD':>9} {'RAM':>7}  "
          f"{'LICENSE':<26} TAGS")  # fmt: skip
    for m in answer["models"]:
        mark = "*" if m["name"] == answer["recommended"] else " "
        installed = " (installed)" if m["installed"] else ""
        print(f"{m['name'] + mark:<24} {m['family']:<10} {m['parameters']:>6} "
              f"{size(m['download']['size_mb']):>9} {size(m['ram_mb']):>7}  "
              f"{license_text(m):<26} {','.join(m['tags'])}{installed}")  # fmt: skip
    ram = f"{machine['ram_mb'] / 1000:.0f} GB RAM" if machine["ram_mb"] else "RAM unknown"
    kind = "MLX folders (Apple Silicon)" if fmt == "mlx" else "GGUF files (llama.cpp)"
    print(f"\nThis machine: {ram}; downloads are {kind}. RAM: what a model needs loaded.")
    print("gated: accept the license's terms before use; restricted: read its license note.")
    best = next((m for m in answer["models"] if m["name"] == answer["recommended"]), None)
    if best is not None:
        print(f"* Recommended here: {best['name']} — {best['description']}")
        print(f"  {size(best['download']['size_mb'])} download, license {license_text(best)}; "
              f"chosen as {answer['reason']}.")  # fmt: skip
        print(f"  Get it: hearth models pull {best['name']}")
    print(answer["network"])
    return 0


def pull_catalog(args: argparse.Namespace, wait: Any) -> int:
    """Show what will be downloaded, ask, then pull with the user's consent."""
    client = common.client()
    answer = client.call("models.catalog")
    model = next((m for m in answer["models"] if m["name"] == args.target.lower()), None)
    if model is None:
        names = ", ".join(m["name"] for m in answer["models"])
        print(f"hearth: {args.target!r} is not in the catalog; pick one of: {names}\n"
              "(`hearth models catalog` describes them; a hub repository is owner/name)",
              file=sys.stderr)  # fmt: skip
        return 2
    fmt = args.format or answer["machine"]["format"]
    download = model["downloads"][fmt]
    pin = download["revision"][:12] if download["revision_verified"] else (
        f"{download['revision']} (resolved to a commit at download)")  # fmt: skip
    what = download["file"] or "an MLX model folder"
    print(
        f"{model['name']}: {model['family']} {model['parameters']}, {download['quantization']}"
        f" {fmt.upper()}, about {size(download['size_mb'])}, needs {size(model['ram_mb'])} RAM"
    )
    print(f"  from {download['repo']}: {what}, at {pin}; every file's checksum verified")
    print(f"  license: {model['license']} — {model['license_url']}")  # fmt: skip
    if model.get("license_note"):
        print(f"  {model['license_note']}")
    print(f"  {answer['network']}")
    if not args.yes:
        if not sys.stdin.isatty():
            print("hearth: nothing downloaded; add --yes to agree without being asked",
                  file=sys.stderr)  # fmt: skip
            return 2
        if input("Download it? [y/N] ").strip().lower() not in ("y", "yes"):
            print("Nothing downloaded.")
            return 1
    params: dict[str, Any] = {"model": model["name"], "format": fmt, "consent": True}
    if args.endpoint:
        params["endpoint"] = args.endpoint
    info = wait(client, client.send("models.pull", params), model["name"])
    if info is None:
        return 130
    print(f"pulled {info['name']} ({info['format']}, {info['quantization']}, "
          f"{info['size'] / 1e6:.0f} MB) at {info['source']['revision'][:12]}")  # fmt: skip
    if info["default"]:
        print("It is now the default model: `hearth chat` and `hearth rewrite` use it "
              "(default_model in config.toml picks another).")  # fmt: skip
    else:
        print(f"Use it with --model {info['name']}, or set default_model in config.toml.")
    return 0
