"""hearth plugins list | info | install | enable | disable | rm | run | logs."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from daemon.cli import common
from daemon.errors import HearthError

# `hearth plugins run` exit statuses, so scripts can tell why a command did not succeed.
EXIT_PLUGIN_ERROR = 1  # the plugin raised, or its process died
EXIT_REFUSED = 3  # a permission (or an egress rule) refused what it tried
EXIT_LIMIT = 4  # a limit stopped it: memory, CPU, processes, timeout
EXIT_OTHER = 2


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _line(p: dict[str, Any]) -> str:
    state = p["state"]
    if p.get("sandbox") and p["sandbox"].get("missing"):
        state += f" (degraded: no {', '.join(p['sandbox']['missing'])})"
    counts = [
        _count(p[key], one, many)
        for key, one, many in (
            ("crashes", "crash", "crashes"),
            ("timeouts", "timeout", "timeouts"),
            ("limit_hits", "limit hit", "limit hits"),
        )
        if p.get(key)
    ]
    kind = "first-party" if p["builtin"] else "user"
    text = f"{'on ' if p['enabled'] else 'off'}  {p['id']:<22} {p['version'] or '?':<8} "
    text += f"{state:<12} {kind}"
    if counts:
        text += "  · " + ", ".join(counts)
    if p.get("problem"):
        text += f"\n     last problem: {p['problem']}"
    return text


def cmd_list(args: argparse.Namespace) -> int:
    plugins = common.client().call("plugins.list")["plugins"]
    if args.json:
        print(json.dumps(plugins, indent=2))
        return 0
    if not plugins:
        print("no plugins (install one with `hearth plugins install PATH`)")
    for p in plugins:
        print(_line(p))
    return 0


def _show_permissions(p: dict[str, Any]) -> None:
    for line in p["describe_permissions"]:
        print(f"  - {line}")


def cmd_info(args: argparse.Namespace) -> int:
    p = common.client().call("plugins.info", {"id": args.id})
    if args.json:
        print(json.dumps(p, indent=2))
        return 0
    print(f"{p['name']} ({p['id']} {p['version']}) — {p['description']}")
    print(f"folder:  {p['folder']}")
    print(f"state:   {'enabled' if p['enabled'] else 'disabled'}, {p['state']}")
    if p.get("problem"):
        print(f"problem: {p['problem']}")
    print("permissions:")
    _show_permissions(p)
    if p.get("limits"):
        lim = p["limits"]
        print(
            f"limits:  {lim['memory_mb']} MiB memory, {lim['cpu_seconds']} s CPU, "
            f"{lim['timeout']:g} s per call, {lim['processes']} processes, "
            f"{lim['open_files']} open files"
        )
    if p.get("sandbox"):
        for name, layer in p["sandbox"]["layers"].items():
            print(f"sandbox: {name}: {layer}")
        for name in p["sandbox"]["missing"]:
            print(f"sandbox: {name}: MISSING on this system (degraded)")
    for c in p["commands"]:
        print(f"command: {c['name']}  {c['description']}")
    for h in p["hotkeys"]:
        print(f"hotkey:  {h['keys']}  {h['description']}")
    for t in p["triggers"]:
        what = {
            "file": lambda t: f"files {', '.join(t['patterns'])} in {t['path']}",
            "every": lambda t: f"every {t['seconds']:g} s",
            "cron": lambda t: f"cron {t['expression']}",
        }[t["kind"]](t)
        print(f"trigger: {t['handler']}: {what}")
    return 0


def cmd_install(args: argparse.Namespace) -> int:
    p = common.client().call("plugins.install", {"path": str(Path(args.path).resolve())})
    print(f"installed {p['id']} {p['version']} (disabled). It asks for:")
    _show_permissions(p)
    print(f"Enable it with `hearth plugins enable {p['id']}`.")
    return 0


def cmd_enable(args: argparse.Namespace) -> int:
    client = common.client()
    p = client.call("plugins.info", {"id": args.id})
    print(f"{p['name']} ({p['id']}) asks for:")
    _show_permissions(p)
    if not args.yes:
        if not sys.stdin.isatty():
            print("hearth: not a terminal: pass --yes to grant these permissions", file=sys.stderr)
            return 2
        if input("Grant these and enable it? [y/N] ").strip().lower() not in ("y", "yes"):
            print("not enabled")
            return 1
    p = client.call("plugins.enable", {"id": args.id, "permissions": p["permissions"]})
    print(f"enabled {p['id']}: {p['state']}")
    if p.get("problem"):
        print(f"problem: {p['problem']}", file=sys.stderr)
    return 0


def cmd_disable(args: argparse.Namespace) -> int:
    p = common.client().call("plugins.disable", {"id": args.id})
    print(f"disabled {p['id']}")
    return 0


def cmd_rm(args: argparse.Namespace) -> int:
    r = common.client().call("plugins.rm", {"id": args.id})
    print(f"removed {r['id']} (and {r['storage_keys_deleted']} stored key(s))")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    client = common.client()
    try:
        r = client.call("plugins.run", {"id": args.id, "command": args.cmd, "args": args.args})
    except HearthError as exc:
        print(f"hearth: {exc.message}", file=sys.stderr)
        if exc.kind in ("permission_denied", "egress_denied"):
            return EXIT_REFUSED
        if exc.kind == "plugin_limit":
            return EXIT_LIMIT
        return EXIT_PLUGIN_ERROR if exc.kind == "plugin_failed" else EXIT_OTHER
    result = r["result"]
    print(result if isinstance(result, str) else json.dumps(result, indent=2))
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    r = common.client().call("plugins.logs", {"id": args.id, "limit": args.limit})
    if args.json:
        print(json.dumps(r["entries"], indent=2))
        return 0
    for e in r["entries"]:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e["time"]))
        print(f"{when} {e['source']:<6} {e['level']:<7} {e['message']}")
    if not r["persisted"]:
        print("(the vault is locked: these entries are not stored yet)", file=sys.stderr)
    return 0


def add_commands(sub: Any) -> None:
    p = sub.add_parser(
        "plugins",
        help="sandboxed local plugins: list, enable, run",
        description="Plugins are small local programs that use the model on your files, "
        "clipboard and schedule. Each runs in its own sandboxed process and may touch only "
        "what its plugin.toml asks for and you granted.",
    )
    psub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    q = psub.add_parser("list", help="every plugin: enabled, running, problems")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_list)
    q = psub.add_parser("info", help="one plugin: permissions, sandbox, commands, triggers")
    q.add_argument("id")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_info)
    q = psub.add_parser("install", help="copy a plugin folder into your plugins (disabled)")
    q.add_argument("path", help="a folder with plugin.toml and its module")
    q.set_defaults(func=cmd_install)
    q = psub.add_parser("enable", help="show what a plugin asks for, grant it and start it")
    q.add_argument("id")
    q.add_argument("--yes", action="store_true", help="grant without asking")
    q.set_defaults(func=cmd_enable)
    q = psub.add_parser("disable", help="stop a plugin and withdraw its permissions")
    q.add_argument("id")
    q.set_defaults(func=cmd_disable)
    q = psub.add_parser("rm", help="remove a user plugin, its data and its stored keys")
    q.add_argument("id")
    q.set_defaults(func=cmd_rm)
    q = psub.add_parser(
        "run",
        help="run a plugin command and print its result",
        description="Exit status: 0 done, 1 the plugin failed, 3 a permission refused it, "
        "4 a limit stopped it (memory, CPU, processes, timeout), 2 anything else.",
    )
    q.add_argument("id")
    q.add_argument("cmd", metavar="COMMAND")
    q.add_argument("args", nargs="*", metavar="ARG")
    q.set_defaults(func=cmd_run)
    q = psub.add_parser("logs", help="what a plugin logged, and what the host did to it")
    q.add_argument("id")
    q.add_argument("--limit", type=int, default=200, help="newest N entries (max 500)")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_logs)
