"""hearth models pull NAME | REPO [FILE]: its arguments and the command."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from daemon.cli import catalog, common
from daemon.client import Client
from daemon.errors import Cancelled


class ProgressLine:
    """One line on stderr, redrawn: percentage, megabytes, speed."""

    def __init__(self, name: str) -> None:
        self.restart(name)

    def restart(self, name: str) -> None:
        """A new line, for the next file of a folder."""
        self.name = name
        self.started = time.monotonic()
        self.first: int | None = None  # bytes already there when this pull began (a resume)
        self.drawn = False

    def update(self, done: int, total: int | None) -> None:
        if self.first is None:
            self.first = done
        elapsed = max(time.monotonic() - self.started, 1e-3)
        rate = (done - self.first) / elapsed / 1e6
        amount = f"{done / 1e6:.1f}/{total / 1e6:.1f} MB" if total else f"{done / 1e6:.1f} MB"
        percent = f"{100 * done / total:3.0f}%" if total else "   ?"
        sys.stderr.write(f"\r{self.name}  {percent}  {amount}  {rate:.1f} MB/s ")
        sys.stderr.flush()
        self.drawn = True

    def end(self) -> None:
        if self.drawn:
            sys.stderr.write("\n")


def _wait(client: Client, rid: int, line: ProgressLine) -> Any:
    current: list[str] = []  # the file being drawn, for a pull with several

    def show(_: str, p: dict[str, Any]) -> None:
        if p.get("files_total", 1) > 1 and current != [p["file"]]:  # a folder: a line a file
            line.end()
            line.restart(f"[{p['files_done'] + 1}/{p['files_total']}] {p['file']}")
            current[:] = [p["file"]]
        line.update(p["done"], p["total"])

    try:
        while True:
            try:
                return client.wait(rid, show)
            except KeyboardInterrupt:
                client.cancel(rid)  # then read on: the pull ends as cancelled
    finally:
        line.end()


def _catalog_wait(client: Client, rid: int, name: str) -> Any:
    try:
        return _wait(client, rid, ProgressLine(name))
    except Cancelled:
        print("hearth: pull stopped; run the same command again to resume it", file=sys.stderr)
        return None


def cmd_pull(args: argparse.Namespace) -> int:
    if "/" not in args.target:
        if args.file or args.sha256 or args.revision:
            raise SystemExit(
                "hearth: a catalog model is pinned by the catalog; give no FILE, "
                "--sha256 or --revision (those are for owner/name repositories)"
            )
        return catalog.pull_catalog(args, _catalog_wait)
    params: dict[str, Any] = {"repo": args.target, "file": args.file}
    params["revision"] = args.revision or "main"
    if args.sha256:
        params["sha256"] = args.sha256
    if args.endpoint:
        params["endpoint"] = args.endpoint
    client = common.client()
    line = ProgressLine(args.file or args.target)
    try:
        info = _wait(client, client.send("models.pull", params), line)
    except Cancelled:
        print("hearth: pull stopped; run the same command again to resume it", file=sys.stderr)
        return 130
    print(f"pulled {info['name']} ({info['format']}, {info['quantization']}, "
          f"{info['size'] / 1e6:.0f} MB) from {info['repo']}/{info['file']}")  # fmt: skip
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "target",
        metavar="NAME|REPO",
        help="a catalog model (see `hearth models catalog`), or a repository owner/name",
    )
    p.add_argument("file", nargs="?", help="the file in the repository (default: its GGUF)")
    p.add_argument("--sha256", help="the file's expected SHA-256 (repositories only)")
    p.add_argument("--revision", help="branch, tag or commit (repositories only; default main)")
    p.add_argument(
        "--format",
        choices=["gguf", "mlx"],
        help="a catalog model's download (default: MLX on Apple Silicon, else GGUF)",
    )
    p.add_argument(
        "--yes", action="store_true", help="agree to a catalog download without being asked"
    )
    p.add_argument("--endpoint", help="the hub (default https://huggingface.co)")
