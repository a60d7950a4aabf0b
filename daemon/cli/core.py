"""chat, rewrite, status, up, down, daemon."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from daemon import __version__
from daemon.cli import common, hint
from daemon.cli.net import describe_isolation
from daemon.client import EXIT_ALREADY_RUNNING, Client, connect, stop_daemon
from daemon.config import Config
from daemon.errors import DaemonUnavailable, HearthError, InvalidParams


def cmd_chat(args: argparse.Namespace) -> int:
    prompt = " ".join(args.prompt)
    if args.prompt and not prompt.strip():
        raise InvalidParams("the message is empty: type something to ask, or run "
                            "`hearth chat` without arguments for an interactive chat")  # fmt: skip
    client = common.client()
    hint.first_use(client, common.paths())
    history: list[dict[str, str]] = []
    if args.system:
        history.append({"role": "system", "content": args.system})
    base: dict[str, Any] = {"model": args.model, "options": common.options(args)}
    if args.format is not None:
        base["options"]["format"] = _format(args.format)
    base.update(store=not args.no_store, conversation_id=args.conversation)
    if base["store"] and args.conversation is None:
        vault = client.call("vault.status")
        if vault["locked"]:  # say so, then chat without history rather than not at all
            print(f"hearth: this chat will not be kept. {vault['message']}", file=sys.stderr)
            base["store"] = False
    if args.prompt:
        history.append({"role": "user", "content": prompt})
        result = common.stream(client, "chat", {**base, "messages": history})
        _notice(result, 0)
        _continue_in(base, result)
        return 0
    model = client.call("models.list").get("default")
    print(f"Hearth {__version__} · {args.model or model} · Ctrl+C stops an answer, "
          "Ctrl+C again (or Ctrl+D) quits.", file=sys.stderr)  # fmt: skip
    dropped = 0  # turns the daemon last left out of the prompt: a notice when it grows
    live: Client | None = client
    while True:
        try:
            line = input("› ")
        except (EOFError, KeyboardInterrupt):
            print(file=sys.stderr)
            return 0
        if not line.strip():
            continue
        history.append({"role": "user", "content": line})
        try:  # any error ends this turn, never the session
            live = live or common.client()
            result = common.stream(live, "chat", {**base, "messages": history})
        except HearthError as exc:
            print(f"hearth: {exc.message}", file=sys.stderr)
            history.pop()  # not answered, not stored: it is not part of the conversation
            if isinstance(exc, DaemonUnavailable):
                live = None  # reconnect (or start a daemon) at the next message
            continue
        dropped = _notice(result, dropped)
        if _continue_in(base, result):
            history = []  # the daemon keeps the conversation and replays it
        else:
            history.append({"role": "assistant", "content": result["text"]})


def _format(value: str) -> Any:
    """--format: "json", a JSON Schema, or @FILE holding one."""
    if value == "json":
        return value
    source = value
    if value.startswith("@"):
        try:
            source = Path(value[1:]).read_text(encoding="utf-8")
        except OSError as exc:
            raise InvalidParams(f"--format: cannot read {value[1:]}: {exc.strerror}") from None
    try:
        return json.loads(source)
    except ValueError as exc:
        raise InvalidParams(
            f"--format takes json, a JSON Schema or @FILE; this is not JSON ({exc})",
            field="format",
        ) from None


def _notice(result: dict[str, Any], dropped: int) -> int:
    """Print the context notice when more turns than before were left out."""
    now = int((result.get("context") or {}).get("dropped_turns", 0))
    notice = common.context_notice(result)
    if notice and now > dropped:
        print(notice, file=sys.stderr)
    return now


def _continue_in(base: dict[str, Any], result: dict[str, Any]) -> bool:
    """Send the next turns to the conversation this one was stored in; False if not stored."""
    if not result.get("stored"):
        return False
    if base["conversation_id"] is None:
        print(f"[conversation {result['conversation_id']}]", file=sys.stderr)
    base["conversation_id"] = result["conversation_id"]
    return True


def cmd_rewrite(args: argparse.Namespace) -> int:
    if args.selection and not args.list:  # the tray connects, not us
        from daemon.cli.selection import rewrite_selection

        return rewrite_selection(args.preset, common.options(args))
    client = common.client()
    if args.list:
        for preset in client.call("rewrite.presets")["presets"]:
            mark = ""
            if preset.get("source") == "user":
                mark = (
                    "(yours) "
                    if not preset.get("replaces_builtin")
                    else "(yours, replaces the built-in) "
                )
            if preset.get("route") == "remote":
                mark += "(remote model) "
            print(f"{preset['name']:<14} {mark}{preset['instruction']}")
        return 0
    hint.first_use(client, common.paths())
    text = " ".join(args.text) if args.text else sys.stdin.read()
    params = {
        "text": text,
        "preset": args.preset or "rewrite",
        "model": args.model,
        "options": common.options(args),
    }
    common.stream(client, "rewrite", params)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    paths = common.paths()
    try:
        client = Client.connect(paths.socket)
    except DaemonUnavailable:
        if args.json:
            print(json.dumps({"running": False, "socket": str(paths.socket)}))
        else:
            print(f"Hearth daemon: not running (socket {paths.socket})")
        return 3
    status = client.call("status")
    if args.json:
        print(json.dumps(status, indent=2))
        return 0
    print(f"Hearth daemon {status['version']} · pid {status['pid']} · engine {status['engine']}")
    print(f"socket   {status['socket']}")
    loaded = ", ".join(f"{r['model']} ({r['engine']}, pid {r['pid']})" for r in status["runners"])
    print(f"loaded   {loaded or 'nothing'}")
    print(f"queue    {status['queue']} waiting")
    for r in status.get("requests", []):
        print(f"         {r['state']:<8} {r['priority']:<11} {r['model']} ({r['engine']}), "
              f"{r['tokens']} tokens, for {r['for_s']:.1f} s")  # fmt: skip
    vault = status.get("vault") or {}
    reason = f" ({vault['reason']})" if vault.get("reason") else ""
    print(f"vault    {vault.get('state', '?')}{reason}")
    memory = status.get("memory")
    if memory:
        line = (f"memory   {memory['available_mb']:,} MB available of {memory['total_mb']:,} MB; "
                f"idle models unload below {memory['low_mb']:,} MB")  # fmt: skip
        print(line + (f" (now: {memory['low']})" if memory["low"] else ""))
        for event in memory["unloaded"][-3:]:
            when = time.strftime("%H:%M:%S", time.localtime(event["time"]))
            print(f"         {when} unloaded {event['model']}: {event['reason']}, "
                  f"{event['available_mb']:,} MB available")  # fmt: skip
    for line in describe_isolation(status["isolation"]) if "isolation" in status else []:
        print(line)
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    client = connect(common.paths())
    print(f"Hearth daemon running (pid {client.call('status')['pid']})")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    pid = stop_daemon(common.paths())
    if pid is None:
        print("Hearth daemon is not running")
    else:
        print(f"Hearth daemon stopped (pid {pid})")
    return 0


def cmd_daemon(args: argparse.Namespace) -> int:
    from daemon.main import AlreadyRunning, StartupError, run

    paths = common.paths()
    try:
        config = Config.load(paths.config_file)
    except ValueError as exc:
        print(f"hearth: bad config: {exc}", file=sys.stderr)
        return 1
    try:
        run(paths, config, verbose=args.verbose)
    except StartupError as exc:
        print(f"hearth: {exc}", file=sys.stderr)
        return EXIT_ALREADY_RUNNING if isinstance(exc, AlreadyRunning) else 1
    return 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("chat", help="chat with the model (no prompt: interactive)")
    p.add_argument("prompt", nargs="*", help="a one-shot prompt; omit for an interactive chat")
    p.add_argument("--system", help="a system prompt")
    p.add_argument("--conversation", metavar="ID", help="continue a stored conversation")
    p.add_argument("--no-store", action="store_true", help="leave no trace in the history")
    p.add_argument(
        "--format",
        metavar="json|SCHEMA|@FILE",
        help="answer in JSON: 'json' (any object), or held to a JSON Schema given inline "
        "or in a file",
    )
    common.generation_flags(p)
    p.set_defaults(func=cmd_chat)

    p = sub.add_parser("rewrite", help="rewrite text with a preset (reads stdin without TEXT)")
    p.add_argument("text", nargs="*", help="the text to rewrite; omit to read stdin")
    p.add_argument("-p", "--preset", help="preset name (see --list); default: rewrite")
    p.add_argument("--list", action="store_true", help="list the presets and exit")
    p.add_argument(
        "--selection", action="store_true",
        help="rewrite the text selected in the focused app, in a popup, and paste the result "
        "over it (bind this to a keyboard shortcut; default preset: the last one used)",
    )  # fmt: skip
    common.generation_flags(p)
    p.set_defaults(func=cmd_rewrite)

    p = sub.add_parser("status", help="show whether the daemon runs and what it has loaded")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("daemon", help="run the daemon in the foreground")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.set_defaults(func=cmd_daemon)
    sub.add_parser("up", help="start the daemon in the background").set_defaults(func=cmd_up)
    sub.add_parser("down", help="stop the background daemon").set_defaults(func=cmd_down)
