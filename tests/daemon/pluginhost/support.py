"""The real daemon for the plugin tests: its own HEARTH_HOME and HOME (so ~/.ssh and
~/Notes are the test's), the session's keychain (so plugin storage has a vault), and
the `hearth` CLI run as a user runs it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daemon.client import Client
from daemon.errors import DaemonUnavailable
from daemon.paths import Paths

REPO = Path(__file__).resolve().parents[3]
TEST_PLUGINS = Path(__file__).resolve().parent / "plugins"


@dataclass
class PluginDaemon:
    root: Path
    proc: subprocess.Popen[bytes]
    extra_env: dict[str, str]

    @property
    def paths(self) -> Paths:
        return Paths.from_env({"HEARTH_HOME": str(self.root)})

    @property
    def user_home(self) -> Path:
        return self.root / "home"

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "HEARTH_HOME": str(self.root),
            "HOME": str(self.user_home),
            "HEARTH_TEST_HOOKS": "1",
            "PYTHONPATH": str(REPO),
            **self.extra_env,
        }

    def hearth(self, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "daemon", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=REPO,
        )

    def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        with Client.connect(self.paths.socket, "test") as client:
            return client.call(method, params)

    def install(self, folder: Path, enable: bool = True) -> None:
        out = self.hearth("plugins", "install", str(folder))
        assert out.returncode == 0, out.stderr
        if enable:
            out = self.hearth("plugins", "enable", json.loads(_id(folder)), "--yes")
            assert out.returncode == 0, out.stderr

    def enable(self, plugin_id: str) -> None:
        out = self.hearth("plugins", "enable", plugin_id, "--yes")
        assert out.returncode == 0, out.stderr

    def info(self, plugin_id: str) -> dict[str, Any]:
        return dict(self.call("plugins.info", {"id": plugin_id}))

    def log_text(self, plugin_id: str) -> str:
        entries = self.call("plugins.logs", {"id": plugin_id, "limit": 500})["entries"]
        return "\n".join(f"{e['source']} {e['message']}" for e in entries)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _id(folder: Path) -> str:
    for line in (folder / "plugin.toml").read_text().splitlines():
        if line.startswith("id"):
            return line.split("=", 1)[1].strip()
    raise AssertionError(f"no id in {folder}/plugin.toml")


@contextmanager
def plugin_daemon(config: str = "keep_alive = -1\n", **extra_env: str) -> Iterator[PluginDaemon]:
    root = Path(tempfile.mkdtemp(prefix="hp-", dir="/tmp"))
    (root / "config").mkdir(mode=0o700)
    (root / "config" / "config.toml").write_text(config)
    (root / "home").mkdir()
    daemon = PluginDaemon(root, None, extra_env)  # type: ignore[arg-type]
    with open(root / "daemon.out", "ab") as out:
        daemon.proc = subprocess.Popen(
            [sys.executable, "-m", "daemon", "daemon"],
            env=daemon.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            if daemon.proc.poll() is not None:
                raise RuntimeError(f"the daemon exited: {(root / 'daemon.out').read_text()}")
            try:
                Client.connect(daemon.paths.socket, "test").close()
                break
            except DaemonUnavailable:
                if time.monotonic() > deadline:
                    raise RuntimeError("the daemon did not start") from None
                time.sleep(0.05)
        yield daemon
    finally:
        daemon.stop()
        _stop_any_other(daemon)
        shutil.rmtree(root, ignore_errors=True)


def _stop_any_other(daemon: PluginDaemon) -> None:
    """Stop a daemon a CLI in the test started itself (after the test's own was killed)."""
    try:
        with Client.connect(daemon.paths.socket, "test") as c:
            pid = int(c.call("status")["pid"])
    except (DaemonUnavailable, OSError):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)


def wait_for(check: Callable[[], Any], timeout: float = 120, what: str = "it") -> Any:
    """Poll ``check`` until it returns something truthy; fail with ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def copy_plugin(source: Path, target: Path, replace: dict[str, str] | None = None) -> Path:
    """A copy of a plugin folder, with strings replaced in its plugin.toml."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
    manifest = target / "plugin.toml"
    text = manifest.read_text()
    for old, new in (replace or {}).items():
        assert old in text, f"{old!r} is not in {manifest}"
        text = text.replace(old, new)
    manifest.write_text(text)
    return target
