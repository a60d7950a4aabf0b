"""Linux: Hearth as systemd user units, socket-activated, plus its desktop entries.

Installed for this user only, in ``$XDG_CONFIG_HOME/systemd/user`` (units),
``$XDG_CONFIG_HOME/autostart`` (the tray at login) and ``$XDG_DATA_HOME`` (launcher,
icon). Enabling is the symlink ``systemctl --user enable`` would make, so it works
without a running user manager too (a container, an ssh session without
pam_systemd): the units are then in place for the next login, and we say so.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from daemon.client import stop_daemon
from daemon.paths import Paths
from daemon.service.files import (
    Say,
    ServiceError,
    hearth_command,
    packaging_dir,
    quote,
    remove,
    render,
    write,
    xdg,
)

UNITS = ("hearth.socket", "hearth.service")
PINNED_ENV = ("HEARTH_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME")


class Systemd:
    kind = "systemd user units"

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.paths = Paths.from_env(dict(env))
        config = xdg(env, "XDG_CONFIG_HOME", ".config")
        data = xdg(env, "XDG_DATA_HOME", ".local/share")
        self.unit_dir = config / "systemd" / "user"
        self.wants = self.unit_dir / "sockets.target.wants" / "hearth.socket"
        self.launcher = data / "applications" / "hearth.desktop"
        self.icon = data / "icons" / "hicolor" / "scalable" / "apps" / "hearth.svg"
        self.autostart = config / "autostart" / "hearth-tray.desktop"

    def values(self) -> dict[str, str]:
        """What the templates' @NAME@ become for this user."""
        custom = bool(self.env.get("HEARTH_HOME"))
        paths = self.paths
        writable = [paths.config, paths.data, paths.logs]
        if not paths.models.is_relative_to(paths.data):
            writable.append(paths.models)
        writable_text = " ".join(quote(str(p)) for p in writable)
        pinned = [f"TMPDIR={paths.run}" if custom else "TMPDIR=%t/hearth"]
        pinned += [f"{name}={self.env[name]}" for name in PINNED_ENV if self.env.get(name)]
        return {
            "HEARTH": hearth_command(),
            # The daemon's own default when no HEARTH_HOME: under systemd, %t is
            # $XDG_RUNTIME_DIR, exactly where Paths puts the socket.
            "SOCKET": quote(str(paths.socket)) if custom else "%t/hearth/hearth.sock",
            "RW_PATHS": writable_text + (" " + quote(str(paths.run)) if custom else " %t/hearth"),
            "ENVIRONMENT": " ".join(quote(item) for item in pinned),
        }

    def files(self, tray: bool) -> dict[Path, str]:
        values = self.values()
        files = {self.unit_dir / unit: render(f"linux/{unit}", values) for unit in UNITS}
        if tray:
            files[self.launcher] = render("linux/hearth.desktop", values)
            files[self.autostart] = render("linux/hearth-tray.desktop", values)
            files[self.icon] = (packaging_dir() / "linux" / "hearth.svg").read_text()
        return files

    def installed(self) -> bool:
        return all((self.unit_dir / unit).is_file() for unit in UNITS)

    def install(self, say: Say, tray: bool) -> None:
        # ProtectSystem=strict makes everything else read-only: Hearth's own directories
        # must exist before the first start to be made writable.
        for path in (self.paths.config, self.paths.data, self.paths.models, self.paths.logs):
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        changed = False
        for path, text in self.files(tray).items():
            changed |= write(path, text, say)
        if not tray:
            say("  skipped    the launcher and the tray's autostart (no tray in this install)")
        if not self.wants.is_symlink():
            self.wants.parent.mkdir(parents=True, exist_ok=True)
            self.wants.symlink_to(self.unit_dir / "hearth.socket")
            say(f"  enabled    {self.wants} (the socket is bound at every login)")
        running, why = self.manager()
        if not running:
            say(
                f"No systemd user manager is running here ({why}), so nothing was started. "
                "The units are in place and enabled for your next login; with a manager, "
                "start them now with: systemctl --user daemon-reload && "
                "systemctl --user start hearth.socket"
            )
            return
        self._systemctl("daemon-reload")
        if self._systemctl("is-active", "--quiet", "hearth.socket").returncode != 0:
            pid = stop_daemon(self.paths)  # a hand-started daemon would keep the socket's lock
            if pid is not None:
                say(f"  stopped    the daemon started by hand (pid {pid}); systemd runs it now")
        self._systemctl("start", "hearth.socket", check=True)
        if changed:
            self._systemctl("try-restart", "hearth.service")
        say("Started: hearth.socket listens; the daemon starts on the first connection.")

    def uninstall(self, say: Say) -> bool:
        running, _ = self.manager()
        if running:
            self._systemctl("disable", "--now", *UNITS)
        removed = False
        for path in (self.wants, *(self.unit_dir / u for u in UNITS), self.launcher,
                     self.autostart, self.icon):  # fmt: skip
            removed |= remove(path, say)
        if running:
            self._systemctl("daemon-reload")
            self._systemctl("reset-failed", *UNITS)
        return removed

    def status(self) -> list[tuple[str, str]]:
        rows = []
        for unit in UNITS:
            path = self.unit_dir / unit
            rows.append((unit, f"installed ({path})" if path.is_file() else "not installed"))
        rows.append(("at login", "enabled" if self.wants.is_symlink() else "not enabled"))
        rows.append(("launcher", "installed" if self.launcher.is_file() else "not installed"))
        rows.append(("tray", "starts at login" if self.autostart.is_file() else "not at login"))
        running, why = self.manager()
        if running:
            for unit in UNITS:
                state = self._systemctl("is-active", unit).stdout.strip() or "unknown"
                rows.append((f"{unit} now", state))
        else:
            rows.append(("systemd", f"no user manager running here ({why})"))
        return rows

    def manager(self) -> tuple[bool, str]:
        """Whether a systemd user manager answers, and if not, why."""
        if shutil.which("systemctl") is None:
            return False, "systemctl not found"
        try:
            done = self._systemctl("show", "--property=SystemState", "--value")
        except subprocess.TimeoutExpired:
            return False, "systemctl --user did not answer"
        if done.returncode != 0:
            return False, f"systemctl --user: {done.stderr.strip() or 'no answer'}"
        return True, done.stdout.strip()

    def _systemctl(self, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["systemctl", "--user", *args],
            env=dict(self.env), capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        if check and done.returncode != 0:
            raise ServiceError(
                f"systemctl --user {' '.join(args)} failed: {done.stderr.strip()} "
                f"(see: journalctl --user -u hearth.socket -u hearth.service)"
            )
        return done
