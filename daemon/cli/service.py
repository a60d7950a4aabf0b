"""hearth service install | uninstall | status: Hearth under the OS's service manager."""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys

from daemon.cli import common
from daemon.client import stop_daemon
from daemon.service import ServiceError, for_platform
from daemon.service.purge import Leftovers, delete_dirs, delete_keychain_items, leftovers, size


def _say(line: str) -> None:
    print(line, flush=True)


def tray_available() -> bool:
    """Whether this install can run `hearth tray`: the command, and Qt (an optional extra)."""
    from daemon.cli import build_parser

    if importlib.util.find_spec("PySide6") is None:
        return False
    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            return "tray" in action.choices
    return False


def cmd_install(args: argparse.Namespace) -> int:
    manager = for_platform(os.environ)
    tray = tray_available() if args.tray is None else args.tray
    print(f"Installing Hearth's {manager.kind} (for {os.environ.get('USER') or 'this user'})")
    manager.install(_say, tray)
    return 0


def cmd_uninstall(args: argparse.Namespace) -> int:
    manager = for_platform(os.environ)
    print(f"Removing Hearth's {manager.kind}")
    if not manager.uninstall(_say):
        print("  nothing to remove: the service was not installed")
    paths = common.paths()
    if not args.purge:
        _show_kept(leftovers(paths))
        return 0
    pid = stop_daemon(paths)  # a hand-started daemon holds the vault open
    if pid is not None:
        print(f"  stopped    the running daemon (pid {pid})")
    return _purge(leftovers(paths), args.yes)


def _show_kept(found: Leftovers) -> None:
    if not found.dirs and not found.keychain:
        print("Nothing of yours is left: no config, data, models or keychain items.")
    else:
        print("Kept, so nothing of yours is lost:")
        _list(found)
        print("To delete all of it: hearth service uninstall --purge")
    print(
        "Hearth itself stays installed: `pipx uninstall hearth-assistant` "
        "(or `pip uninstall hearth-assistant` in its virtualenv) removes it."
    )


def _list(found: Leftovers) -> None:
    for label, path in found.dirs:
        print(f"  {path}  ({_human(size(path))}) — {label}")
    if found.keychain:
        unchecked = "" if found.keychain_reachable else " (the keychain is out of reach: unchecked)"
        print(
            f'  {len(found.keychain)} keychain items (service "hearth"): '
            f"the vault's key and the audit log's keys{unchecked}"
        )
    for where in found.unreadable:
        print(f"  could not read which keychain items {where} names")


def _purge(found: Leftovers, yes: bool) -> int:
    if not found.dirs and not found.keychain:
        print("Nothing to delete: no config, data, models or keychain items.")
        return 0
    print("This deletes, for good (your conversations cannot be recovered):")
    _list(found)
    if not yes:
        try:
            answer = input('Type "yes" to delete all of this: ')
        except EOFError:
            answer = ""
        if answer.strip().lower() != "yes":
            print("Nothing deleted.")
            return 1
    left = delete_keychain_items(found.keychain)
    stuck = delete_dirs(found)
    root = os.environ.get("HEARTH_HOME")
    if root and os.path.isdir(root) and not os.listdir(root):
        os.rmdir(root)
    print(
        f"Deleted {len(found.dirs) - len(stuck)} directories and "
        f"{len(found.keychain) - len(left)} keychain items."
    )
    for path in stuck:
        print(f"Could not delete all of {path}: remove what is left by hand.")
    if left:
        print(
            'These keychain items could not be reached and remain (service "hearth"); '
            "remove them with your keychain app (Seahorse, Keychain Access):"
        )
        for account in left:
            print(f"  {account}")
        return 1
    return 1 if stuck else 0


def cmd_status(args: argparse.Namespace) -> int:
    manager = for_platform(os.environ)
    print(f"Hearth {manager.kind}:")
    for label, text in manager.status():
        print(f"  {label:<16} {text}")
    return 0 if manager.installed() else 3


def _human(n: int) -> str:
    size_ = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size_ < 1024 or unit == "GB":
            return f"{size_:.0f} {unit}" if unit == "B" else f"{size_:.1f} {unit}"
        size_ /= 1024
    return f"{n} B"


def run(args: argparse.Namespace) -> int:
    try:
        return int(args.service_func(args))
    except ServiceError as exc:
        print(f"hearth: {exc}", file=sys.stderr)
        return 2


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "service",
        help="run Hearth as a service of this OS, for this user (install, uninstall, status)",
        description="Install Hearth's daemon as a user service of the OS's own service "
        "manager (systemd on Linux, launchd on macOS): its socket is ready at login and "
        "the daemon starts on the first connection. Never needs root.",
    )
    actions = p.add_subparsers(dest="service_action", required=True, metavar="ACTION")

    q = actions.add_parser("install", help="write the units (or agent) and start them; idempotent")
    group = q.add_mutually_exclusive_group()
    group.add_argument(
        "--tray",
        action="store_true",
        default=None,
        help="also install the desktop launcher and start the tray at login "
        "(default: when this install has the tray)",
    )
    group.add_argument(
        "--no-tray",
        dest="tray",
        action="store_false",
        help="leave the launcher and the tray's autostart out",
    )
    q.set_defaults(func=run, service_func=cmd_install)

    q = actions.add_parser(
        "uninstall",
        help="stop and remove the service; your data stays unless --purge",
        description="Stop and remove the units (or agent). Your config, conversations "
        "(the vault), models, logs and keychain items stay, and are listed; --purge "
        "deletes them too, after you confirm.",
    )
    q.add_argument(
        "--purge",
        action="store_true",
        help="also delete the config, vault, models, logs and keychain items",
    )
    q.add_argument(
        "-y",
        "--yes",
        action="store_true",
        help="with --purge: do not ask for confirmation (for scripts)",
    )
    q.set_defaults(func=run, service_func=cmd_uninstall)

    q = actions.add_parser("status", help="what is installed, enabled and running")
    q.set_defaults(func=run, service_func=cmd_status)
