"""hearth history list | show ID | rm ID | search TEXT | export ID, and hearth settings."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from daemon.cli import common


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(t))


def _json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


def cmd_history(args: argparse.Namespace) -> int:
    if args.action != "list" and not args.target:
        what = "a search text" if args.action == "search" else "a conversation id"
        raise SystemExit(f"hearth: history {args.action} needs {what}")
    client = common.client()
    if args.action == "list":
        conversations = client.call("conversations.list")["conversations"]
        if args.json:
            _json(conversations)
            return 0
        for c in conversations:
            print(f"{c['id']}  {_when(c['updated'])}  {c['messages']:>4}  {c['title']}")
    elif args.action == "show":
        conversation = client.call("conversations.get", {"id": args.target})
        if args.json:
            _json(conversation)
            return 0
        print(f"{conversation['title']}  ({conversation['id']}, {_when(conversation['created'])})")
        for m in conversation["messages"]:
            print(f"\n[{m['role']}]\n{m['content']}")
    elif args.action == "rm":
        client.call("conversations.delete", {"id": args.target})
        print(f"deleted {args.target} (its key is destroyed: it cannot be recovered)")
    elif args.action == "search":
        started = time.monotonic()
        results = client.call("conversations.search", {"text": args.target, "limit": args.limit})
        took = time.monotonic() - started
        if args.json:
            _json(results["results"])
            return 0
        for hit in results["results"]:
            where = hit["role"] or "title"
            print(f"{hit['conversation']}  {where:<9}  {hit['snippet']}")
        print(f"{len(results['results'])} match(es) in {took:.2f}s", file=sys.stderr)
    elif args.action == "export":
        _json(client.call("conversations.export", {"id": args.target}))
    return 0


def cmd_settings(args: argparse.Namespace) -> int:
    client = common.client()
    if args.key is None:
        for key, value in client.call("settings.get")["settings"].items():
            print(f"{key} = {json.dumps(value)}")
        return 0
    if args.value is None:
        print(json.dumps(client.call("settings.get", {"key": args.key})["value"]))
        return 0
    try:
        value = json.loads(args.value)
    except ValueError:
        hint = "use true, false, null or a number"
        raise SystemExit(f"hearth: {args.value!r} is not a value: {hint}") from None
    result = client.call("settings.set", {"key": args.key, "value": value})
    print(f"{result['key']} = {json.dumps(result['value'])}")
    if result.get("purged"):
        print(f"{result['purged']} expired conversation(s) deleted", file=sys.stderr)
    return 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("history", help="list, show, delete, search or export stored chats")
    p.add_argument("action", choices=["list", "show", "rm", "search", "export"])
    p.add_argument("target", nargs="?", help="a conversation id, or the text to search for")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--limit", type=int, default=100, help="at most N search results")
    p.set_defaults(func=cmd_history)

    p = sub.add_parser(
        "settings",
        help="show or change privacy settings (keep_history, retention_days)",
        description="No KEY: show every setting. KEY: show one. KEY VALUE: change it "
        "(VALUE is JSON: true, false, null, 30).",
    )
    p.add_argument("key", nargs="?")
    p.add_argument("value", nargs="?")
    p.set_defaults(func=cmd_settings)
