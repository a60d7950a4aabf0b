"""Finding the packaging templates, filling them in, and writing files idempotently."""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

Say = Callable[[str], None]
_TOKEN = re.compile(r"@[A-Z_]+@")


class ServiceError(Exception):
    """Installing or removing the service failed; the message says why and what to do."""


def packaging_dir() -> Path:
    """``daemon/_packaging`` in an installed wheel (setup.py copies it), else the checkout's."""
    daemon_dir = Path(__file__).resolve().parent.parent
    for candidate in (daemon_dir / "_packaging", daemon_dir.parent / "packaging"):
        if (candidate / "linux" / "hearth.service").is_file():
            return candidate
    raise ServiceError(f"the service templates are missing from {daemon_dir}: reinstall Hearth")


def render(template: str, values: Mapping[str, str]) -> str:
    """The template (a path under packaging/) with every @NAME@ replaced."""
    text = (packaging_dir() / template).read_text(encoding="utf-8")
    for name, value in values.items():
        text = text.replace(f"@{name}@", value)
    left = _TOKEN.search(text)
    if left:
        raise ServiceError(f"{template}: no value for {left.group()}")
    return text


def hearth_command() -> str:
    """How the OS runs this very Hearth: its interpreter, then `-m daemon`."""
    return f"{quote(sys.executable)} -m daemon"


def quote(word: str) -> str:
    """Quoted for systemd and .desktop files (both take double quotes) when it needs it."""
    if re.fullmatch(r"[A-Za-z0-9_./%@:+=,-]+", word):
        return word
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write(path: Path, text: str, say: Say) -> bool:
    """Write ``text`` to ``path`` atomically unless it is there already; True if written."""
    try:
        if path.read_text(encoding="utf-8") == text:
            say(f"  unchanged  {path}")
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    say(f"  wrote      {path}")
    return True


def remove(path: Path, say: Say) -> bool:
    """Remove a file or symlink we installed; True if there was one."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    say(f"  removed    {path}")
    return True


def home(env: Mapping[str, str]) -> Path:
    return Path(env.get("HOME") or Path.home())


def xdg(env: Mapping[str, str], name: str, default: str) -> Path:
    """An XDG base directory: the variable when set to an absolute path, else the default."""
    value = env.get(name, "")
    return Path(value) if value.startswith("/") else home(env) / default
