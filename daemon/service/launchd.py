"""macOS: Hearth's daemon as a launchd agent with a socket launchd binds at login.

The plist in ``packaging/macos`` is the template; this fills in the Python that runs
Hearth, the socket path and the environment that makes the daemon compute that same
path (TMPDIR, HEARTH_HOME), writes it to ``~/Library/LaunchAgents`` and loads it into
the user's GUI domain with ``launchctl bootstrap``.
"""

from __future__ import annotations

import os
import plistlib
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from daemon.activation import LAUNCHD_SOCKET_ENV
from daemon.client import stop_daemon
from daemon.paths import Paths
from daemon.service.files import Say, ServiceError, home, packaging_dir, remove, write

LABEL = "org.hearth.daemon"


class Launchd:
    kind = "launchd agent"

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.paths = Paths.from_env(dict(env))
        self.plist = home(env) / "Library" / "LaunchAgents" / f"{LABEL}.plist"
        self.domain = f"gui/{os.getuid()}"

    def agent(self) -> dict[str, Any]:
        """The template, filled in for this user."""
        with open(template_path(), "rb") as fh:
            agent: dict[str, Any] = plistlib.load(fh)
        agent["ProgramArguments"] = [sys.executable, "-m", "daemon", "daemon"]
        agent["Sockets"]["Listeners"]["SockPathName"] = str(self.paths.socket)
        environment = {LAUNCHD_SOCKET_ENV: "Listeners"}
        if self.env.get("HEARTH_HOME"):
            environment["HEARTH_HOME"] = self.env["HEARTH_HOME"]
        else:  # the daemon's socket dir is $TMPDIR/hearth-UID: pin the TMPDIR that made it
            environment["TMPDIR"] = str(self.paths.run.parent)
        agent["EnvironmentVariables"] = environment
        agent["StandardErrorPath"] = str(self.paths.logs / "daemon.err")
        return agent

    def installed(self) -> bool:
        return self.plist.is_file()

    def install(self, say: Say, tray: bool) -> None:
        # launchd binds the socket in the run dir, so it must exist (0700) before login.
        self.paths.ensure()
        text = plistlib.dumps(self.agent()).decode()
        changed = write(self.plist, text, say)
        if tray:
            say("  note       the tray starts at login from Hearth.app's login item (not yet)")
        if shutil.which("launchctl") is None:
            say("launchctl was not found, so nothing was loaded; the agent loads at next login.")
            return
        if self._launchctl("print", f"{self.domain}/{LABEL}").returncode == 0:
            if not changed:
                say("Already loaded: launchd listens on the socket.")
                return
            self._launchctl("bootout", f"{self.domain}/{LABEL}")
        pid = stop_daemon(self.paths)  # a hand-started daemon holds the lock
        if pid is not None:
            say(f"  stopped    the daemon started by hand (pid {pid}); launchd runs it now")
        done = self._launchctl("bootstrap", self.domain, str(self.plist))
        if done.returncode != 0:
            raise ServiceError(f"launchctl bootstrap failed: {done.stderr.strip()}")
        say("Loaded: launchd listens on the socket; the daemon starts on the first connection.")

    def uninstall(self, say: Say) -> bool:
        if shutil.which("launchctl") is not None:
            self._launchctl("bootout", f"{self.domain}/{LABEL}")
        return remove(self.plist, say)

    def status(self) -> list[tuple[str, str]]:
        rows = [("agent", f"installed ({self.plist})" if self.installed() else "not installed")]
        if shutil.which("launchctl") is None:
            rows.append(("launchd", "launchctl not found"))
        else:
            loaded = self._launchctl("print", f"{self.domain}/{LABEL}").returncode == 0
            rows.append(("launchd", "loaded" if loaded else "not loaded"))
        return rows

    def _launchctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["launchctl", *args], capture_output=True, text=True, timeout=60)


def template_path() -> Path:
    return packaging_dir() / "macos" / f"{LABEL}.plist"
