"""hearth audit list [--json] [--since T] [--caller C] | verify | reset."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
import time
from typing import Any

from daemon.cli import common

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(text: str) -> float:
    """A time: a duration ago (``30m``, ``2h``, ``7d``), an ISO date or date-time (local
    time unless it says otherwise), or seconds since the epoch."""
    ago = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd])", text.strip())
    if ago:
        return time.time() - float(ago.group(1)) * _UNITS[ago.group(2)]
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return dt.datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a time: use e.g. 30m, 2h, 7d, 2025-01-31 or 2025-01-31T09:00"
        ) from None


def _size(n: object) -> str:
    if not isinstance(n, int):
        return "-"
    return f"{n} B" if n < 1000 else f"{n / 1e3:.1f} kB" if n < 1e6 else f"{n / 1e6:.1f} MB"


def _target(e: dict[str, Any]) -> str:
    if e["phase"] == "blocked":
        where = e["host"] if e["port"] is None else f"{e['host']}:{e['port']}"
        return f"{e['method']} {where}"
    if e["phase"] == "recovered":
        return str(e.get("error") or "")
    port = e["port"]
    default = {"http": 80, "https": 443}.get(e["scheme"] or "")
    host = e["host"] if port in (None, default) else f"{e['host']}:{port}"
    return f"{e['method']} {e['scheme']}://{host}{e['path'] or ''}"


def _result(e: dict[str, Any]) -> str:
    phase = e["phase"]
    if phase == "intent":
        verdict = "allowed" if e["decision"] == "allow" else "DENIED"
        return verdict + (f" ({e['rule']})" if e["rule"] else "")
    if phase == "outcome":
        done = str(e["status"]) if e["status"] is not None else "no answer"
        if e["error"]:
            done += f" {e['error']}"
        return f"{done} · ↑{_size(e['bytes_up'])} ↓{_size(e['bytes_down'])} · {e['duration_ms']} ms"
    if phase == "blocked":
        return "BLOCKED by the socket guard"
    return str(phase)


def show(entries: list[dict[str, Any]]) -> None:
    if not entries:
        print("no entries")
        return
    rows = [
        (
            str(e["seq"]),
            dt.datetime.fromtimestamp(e["time"]).strftime("%Y-%m-%d %H:%M:%S"),
            e.get("caller") or "-",
            e["phase"],
            _target(e),
            _result(e),
        )
        for e in entries
    ]
    head = ("SEQ", "TIME", "CALLER", "PHASE", "CALL", "RESULT")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(5)]
    for row, entry in zip([head, *rows], [None, *entries], strict=True):
        print("  ".join(cell.ljust(w) for cell, w in zip(row[:5], widths, strict=True)), row[5])
        for frame in (entry or {}).get("stack") or []:
            print(f"{'':>{widths[0]}}  from {frame}")


def _verdict(result: dict[str, Any], as_json: bool) -> int:
    if as_json:
        print(json.dumps(result, indent=2))
    elif result["ok"]:
        print(f"audit log {result['summary']}")
    if not result["ok"]:
        print(f"hearth: audit log {result['summary']}", file=sys.stderr)
    if result.get("note") and not as_json:
        print(f"note: {result['note']}")
    return 0 if result["ok"] else 1


def cmd_audit(args: argparse.Namespace) -> int:
    client = common.client()
    if args.action == "verify":
        return _verdict(client.call("audit.verify"), args.json)
    if args.action == "reset":
        result = client.call("audit.reset")
        if result.get("kept") and not args.json:
            print(f"the old log is kept as {result['kept']} (in the data folder's egress/)")
        return _verdict(result, args.json)
    params: dict[str, Any] = {"limit": args.limit}
    if args.since is not None:
        params["since"] = args.since
    if args.caller:
        params["caller"] = args.caller
    entries = client.call("audit.list", params)["entries"]
    if args.json:
        print(json.dumps(entries, indent=2))
    else:
        show(entries)
    return 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    audit = sub.add_parser("audit", help="the log of every outbound call: list or verify it")
    actions = audit.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = actions.add_parser("list", help="show the calls (a table; --json for all fields)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--since", type=parse_since, metavar="T", help="e.g. 30m, 2h, 7d, 2025-01-31")
    p.add_argument("--caller", metavar="C", help="only this caller, e.g. models.pull")
    p.add_argument("--limit", type=int, default=1000, help="at most the last N (default 1000)")
    p = actions.add_parser("verify", help="check the hash chain and the signed checkpoints")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = actions.add_parser(
        "reset",
        help="set a log that fails verification aside (kept as evidence) and begin a new one",
        description="Only a log that fails `hearth audit verify` can be reset. It is renamed "
        "audit-<time>.log, never deleted, and the new log's first record names it.",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    audit.set_defaults(func=cmd_audit)
