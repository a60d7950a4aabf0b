"""hearth net status | offline | mode MODE | allow HOST [--for CALLER] | revoke | remote | proxy."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from daemon.cli import common

MODES = ("offline", "ask", "allow-listed")
_MEANING = {
    "offline": "nothing may leave this machine",
    "ask": "allow-listed calls pass; others would need your answer in the tray",
    "allow-listed": "only the calls a rule allows",
}


def show(status: dict[str, Any]) -> None:
    print(f"network  {status['mode']} ({_MEANING.get(status['mode'], '')})")
    rules = [
        f"{r['host']} for {'every caller' if r['caller'] == '*' else r['caller']}"
        for r in status["rules"]
    ]
    print(f"rules    {rules[0] if rules else '(none)'}")
    for rule in rules[1:]:
        print(f"         {rule}")
    print(f"blocked  {status['blocked']} attempt(s) outside the gateway since the daemon started")
    audit = status["audit"]
    if audit["ok"]:
        print(f"audit    {audit['entries']} entries (keys in the {audit['secrets']} store)")
    else:
        print(f"audit    NOT USABLE: {audit['problem']}")
    if audit.get("secrets_note"):
        print(f"secrets  {audit['secrets_note']}")
    if status.get("settings_problem"):
        print(f"settings {status['settings_problem']}")
    for line in describe_isolation(status["isolation"]) if "isolation" in status else []:
        print(line)
    remote = status.get("remote")
    if remote:
        key = "API key in the secret store" if remote["api_key_set"] else "no API key"
        print(f"remote   {remote['url']} · model {remote['model']} · {key}")
    else:
        print("remote   none configured")
    print(f"proxy    {status.get('proxy') or 'none (direct; the environment is ignored)'}")


def describe_isolation(isolation: dict[str, Any]) -> list[str]:
    """Lines saying how model runners are kept off the network (for status and net)."""
    runners = ", ".join(f"pid {r['pid']} {r.get('network', '?')}" for r in isolation["runners"])
    policy = "refused" if isolation["required"] else "ALLOWED (allow_unconfined_runners)"
    lines = [f"runners  {runners or 'none running'}; unconfined runners are {policy}"]
    if isolation["refused"]:
        lines.append(f"         {isolation['refused']} refused: {isolation['last_refusal']}")
    if isolation["blocked"]:
        lines.append(f"         {isolation['blocked']} socket attempt(s) refused inside runners")
    daemon = isolation.get("daemon") or {}
    if daemon.get("core_limit") != 0 or daemon.get("dumpable"):
        lines.append("         the daemon could not turn its core dumps off")
    return lines


def _hint_if_offline(status: dict[str, Any]) -> None:
    if status["mode"] == "offline":
        print(
            "note: Hearth is offline, so rules do not apply yet; "
            "`hearth net mode allow-listed` turns them on",
            file=sys.stderr,
        )


def cmd_net(args: argparse.Namespace) -> int:
    client = common.client()
    action = args.action
    if action == "status":
        status = client.call("net.status")
    elif action in ("offline", "mode"):
        mode = "offline" if action == "offline" else args.mode
        status = client.call("net.set_mode", {"mode": mode})
    elif action == "allow":
        status = client.call("net.allow", {"host": args.host, "caller": args.caller})
        _hint_if_offline(status)
    elif action == "revoke":
        status = client.call("net.revoke", {"host": args.host, "caller": args.caller})
        if not status["revoked"]:
            print(f"hearth: no rule allows {args.host} for {args.caller}", file=sys.stderr)
            return 1
    elif action == "proxy":
        if not args.url and not args.clear:
            raise SystemExit("hearth: net proxy needs a URL (or --clear)")
        status = client.call("net.proxy", {"url": None if args.clear else args.url})
    else:
        status = client.call("net.remote", _remote_params(args))
    if args.json:
        print(json.dumps(status, indent=2))
    else:
        show(status)
    return 0


def _remote_params(args: argparse.Namespace) -> dict[str, Any]:
    if args.clear:
        return {"url": None}
    if not args.url or not args.model:
        raise SystemExit("hearth: net remote needs a URL and --model (or --clear)")
    params: dict[str, Any] = {"url": args.url, "model": args.model}
    if args.api_key_stdin:
        params["api_key"] = sys.stdin.readline().strip()
    return params


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    net = sub.add_parser("net", help="show or change what may reach the network")
    actions = net.add_subparsers(dest="action", required=True, metavar="ACTION")
    common_flags = argparse.ArgumentParser(add_help=False)
    common_flags.add_argument("--json", action="store_true", help="machine-readable output")
    actions.add_parser("status", parents=[common_flags], help="mode, rules, blocked attempts")
    actions.add_parser("offline", parents=[common_flags], help="deny every outbound call")
    p = actions.add_parser("mode", parents=[common_flags], help="set the network mode")
    p.add_argument("mode", choices=MODES)
    for name, text in (("allow", "allow a host"), ("revoke", "remove a rule")):
        p = actions.add_parser(name, parents=[common_flags], help=text)
        p.add_argument("host", help="a host name, *.domain, or an IP address")
        p.add_argument(
            "--for",
            dest="caller",
            default="*",
            metavar="CALLER",
            help="only for this caller, e.g. models.pull (default: every caller)",
        )
    p = actions.add_parser(
        "remote", parents=[common_flags], help="the OpenAI-compatible server for route 'remote'"
    )
    p.add_argument("url", nargs="?", help="e.g. https://api.example.com/v1")
    p.add_argument("--model", help="the model to ask there")
    p.add_argument("--api-key-stdin", action="store_true", help="read the API key from stdin")
    p.add_argument("--clear", action="store_true", help="forget the server and its key")
    p = actions.add_parser(
        "proxy",
        parents=[common_flags],
        help="send outbound calls through a proxy (the shell's http_proxy etc. are ignored)",
    )
    p.add_argument("url", nargs="?", help="e.g. http://proxy.example:3128")
    p.add_argument("--clear", action="store_true", help="go direct again")
    net.set_defaults(func=cmd_net)
