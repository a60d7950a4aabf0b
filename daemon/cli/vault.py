"""hearth vault status | init | unlock | rotate.

Passphrases are read with getpass (or one line of stdin with --passphrase-stdin, for
scripts), sent to the daemon over the private socket, and never printed.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from typing import Any

from daemon.cli import common


def _read_passphrase(args: argparse.Namespace, confirm: bool) -> str:
    if args.passphrase_stdin:
        passphrase = sys.stdin.readline().rstrip("\r\n")
    else:
        passphrase = getpass.getpass("Vault passphrase: ")
        if confirm and getpass.getpass("Again, to confirm: ") != passphrase:
            raise SystemExit("hearth: the two passphrases differ; nothing was changed")
    if not passphrase:
        raise SystemExit("hearth: the passphrase is empty; nothing was changed")
    return passphrase


def _show(status: dict[str, Any]) -> None:
    if not status["initialized"]:
        state = "not set up"
    else:
        state = f"{'locked' if status['locked'] else 'open'}, protected by a {status['protection']}"
    print(f"vault    {state}")
    print(f"file     {status['path']}")
    if status["message"]:
        print(f"note     {status['message']}")


def cmd_vault(args: argparse.Namespace) -> int:
    wants_passphrase = args.passphrase or args.passphrase_stdin
    params: dict[str, Any] = {}
    client = common.client()
    if args.action == "init" and wants_passphrase:
        params["passphrase"] = _read_passphrase(args, confirm=True)
    elif args.action == "unlock":
        before = client.call("vault.status")
        if not before["locked"]:
            print("the vault is already open")
            return 0
        if before["protection"] == "passphrase":  # a keychain vault: retry the keychain
            params["passphrase"] = _read_passphrase(args, confirm=False)
    elif args.action == "rotate":
        if wants_passphrase:
            params["passphrase"] = _read_passphrase(args, confirm=True)
        params.update(keychain=args.keychain, reencrypt=args.reencrypt)
    status = client.call(f"vault.{args.action}", params)
    if args.json:
        print(json.dumps(status, indent=2))
    else:
        _show(status)
    return 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "vault",
        help="the encrypted store of your conversations: status, init, unlock, rotate",
        description="init: create the vault (OS keychain, or --passphrase where there is "
        "none). unlock: open a passphrase vault until the daemon stops. rotate: protect it "
        "with a new key (--passphrase or --keychain to switch), --reencrypt for new data keys.",
    )
    p.add_argument("action", choices=["status", "init", "unlock", "rotate"])
    p.add_argument("--passphrase", action="store_true", help="protect it with a passphrase")
    p.add_argument("--passphrase-stdin", action="store_true", help="read the passphrase from stdin")
    p.add_argument("--keychain", action="store_true", help="rotate: protect it by the keychain")
    p.add_argument("--reencrypt", action="store_true", help="rotate: new keys for every record")
    p.add_argument("--json", action="store_true", help="machine-readable status")
    p.set_defaults(func=cmd_vault)
