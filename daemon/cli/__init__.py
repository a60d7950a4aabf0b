"""The `hearth` command. Each module here adds its own subcommands through add_commands()."""

from __future__ import annotations

import argparse
import sys

from daemon import __version__
from daemon.errors import HearthError


def build_parser() -> argparse.ArgumentParser:
    from daemon.cli import audit, core, history, models, net, plugins, service, tray, vault

    parser = argparse.ArgumentParser(
        prog="hearth",
        description="A private assistant that runs a language model on this computer. "
        "Nothing you type leaves the machine.",
    )
    parser.add_argument("--version", action="version", version=f"hearth {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (core, models, net, audit, history, vault, tray, plugins, service):
        module.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except HearthError as exc:
        print(f"hearth: {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except OSError as exc:  # a file or device the command needed: one line, never a traceback
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"hearth: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1
