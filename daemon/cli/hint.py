"""A one-line hint, shown once, when a person first chats or rewrites with the tiny model.

The built-in model proves everything works but cannot rewrite well; the hint names the
one command that brings the model recommended for this machine, with its size and
license, and says it is the only download Hearth makes. It is shown to people only (a
terminal on stderr, never a pipe or a script) and only while the built-in model is the
only one; a marker in the data dir remembers it was shown.
"""

from __future__ import annotations

import sys
from typing import IO

from daemon.cli.catalog import size
from daemon.client import Client
from daemon.errors import HearthError
from daemon.paths import Paths

MARKER = "model-hint-shown"


def first_use(client: Client, paths: Paths, out: IO[str] = sys.stderr) -> None:
    marker = paths.data / MARKER
    if not out.isatty() or marker.exists():
        return
    try:
        if all(m["builtin"] for m in client.call("models.list")["models"]):
            answer = client.call("models.catalog")
            best = next((m for m in answer["models"] if m["name"] == answer["recommended"]), None)
            if best is not None:
                out.write(
                    f"hearth: tip: the built-in model is tiny. For real answers and rewrites: "
                    f"`hearth models pull {best['name']}` ({size(best['download']['size_mb'])}, "
                    f"license {best['license']}; the only download Hearth makes, and it is "
                    "audited). `hearth models catalog` lists others. (shown once)\n"
                )
                out.flush()
    except HearthError:
        return  # a hint is never worth an error
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
    except OSError:
        pass
