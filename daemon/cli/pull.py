"""hearth models pull REPO [FILE]: its arguments and the command."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from daemon.cli import common
from daemon.client import Client
from daemon.errors import Cancelled


class ProgressLine:
    """One line on stderr, redrawn: percentage, megabytes, speed."""

    def __init__(self, name: str) -> None:
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
    try:
        while True:
            try:
                return client.wait(rid, lambda _, p: line.update(p["done"], p["total"]))
            except KeyboardInterrupt:
                client.cancel(rid)  # then read on: the pull ends as cancelled
    finally:
        line.end()


def cmd_pull(args: argparse.Namespace) -> int:
    params: dict[str, Any] = {"repo": args.target, "file": args.file, "revision": args.revision}
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
    p.add_argument("target", metavar="REPO", help="the repository, e.g. owner/name")
    p.add_argument("file", nargs="?", help="the file in the repository (default: its GGUF)")
    p.add_argument("--sha256", help="the file's expected SHA-256")
    p.add_argument("--revision", default="main", help="branch, tag or commit (default: main)")
    p.add_argument("--endpoint", help="the hub (default https://huggingface.co)")
