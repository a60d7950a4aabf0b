"""Fixtures that start the real daemon, on a real socket, with the real default model."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from daemon.client import Client
from daemon.errors import DaemonUnavailable
from daemon.paths import Paths


@dataclass
class Daemon:
    home: Path
    proc: subprocess.Popen[bytes]

    @property
    def paths(self) -> Paths:
        return Paths.from_env({"HEARTH_HOME": str(self.home)})

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "HEARTH_HOME": str(self.home)}

    def client(self, name: str = "test") -> Client:
        return Client.connect(self.paths.socket, name)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def make_home(config: str = "") -> Path:
    # Short paths: a Unix socket path must fit in 108 bytes.
    home = Path(tempfile.mkdtemp(prefix="hh-", dir="/tmp"))
    (home / "config").mkdir(mode=0o700)
    (home / "config" / "config.toml").write_text(config)
    return home


def start_daemon(home: Path, timeout: float = 30) -> Daemon:
    env = {**os.environ, "HEARTH_HOME": str(home)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "daemon", "daemon"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    daemon = Daemon(home, proc)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read().decode() if proc.stdout else ""
            raise RuntimeError(f"daemon exited with {proc.returncode}: {out}")
        try:
            daemon.client().close()
            return daemon
        except DaemonUnavailable:
            time.sleep(0.05)
    daemon.stop()
    raise RuntimeError("daemon did not start")


@contextlib.contextmanager
def keychain_bus() -> Iterator[str]:
    """A private D-Bus session with an unlocked gnome-keyring, set in os.environ while open.

    The daemon keeps its vault's key in the OS keychain and refuses to invent a key file,
    so on a headless box its chats could store nothing. Daemons started meanwhile inherit
    os.environ and so get this real Secret Service — never the developer's own keyring.
    Yields the bus address.
    """
    for tool in ("dbus-run-session", "gnome-keyring-daemon"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: run `bash tests/system-deps.sh` first")
    root = Path(tempfile.mkdtemp(prefix="hk-", dir="/tmp"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DBUS", "PYTHON_KEYRING"))}
    env.update(HOME=str(root), XDG_RUNTIME_DIR=str(root))
    for var in ("XDG_DATA_HOME", "XDG_CONFIG_HOME"):
        env.pop(var, None)
    script = (
        "echo -n test-login | gnome-keyring-daemon --unlock --components=secrets >/dev/null"
        ' && echo "$DBUS_SESSION_BUS_ADDRESS" && exec cat >/dev/null'
    )
    # The session lives until we close its stdin: then cat, the bus and the keyring exit.
    session = subprocess.Popen(
        ["dbus-run-session", "--", "sh", "-c", script],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert session.stdout is not None and session.stdin is not None
    address = session.stdout.readline().decode().strip()
    if not address:
        session.kill()
        pytest.fail("could not start a D-Bus session with gnome-keyring")
    saved = {k: os.environ.get(k) for k in ("DBUS_SESSION_BUS_ADDRESS", "PYTHON_KEYRING_BACKEND")}
    os.environ["DBUS_SESSION_BUS_ADDRESS"] = address
    os.environ.pop("PYTHON_KEYRING_BACKEND", None)
    try:
        yield address
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        session.stdin.close()
        try:
            session.wait(10)
        except subprocess.TimeoutExpired:
            session.kill()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def keychain_session() -> Iterator[str]:
    """One keychain for every daemon of the run (see keychain_bus).

    This process talks to it too (tests open vaults directly). keyring would pick the
    highest-priority backend among every KeyringBackend subclass imported so far, the
    tests' in-memory fakes included, and ties fall in set order: so pin Secret Service.
    It connects to whatever bus DBUS_SESSION_BUS_ADDRESS names at each call.
    """
    import keyring
    from keyring.backends import SecretService

    with keychain_bus() as address:
        keyring.set_keyring(SecretService.Keyring())
        yield address


@pytest.fixture
def own_keychain() -> Iterator[str]:
    """A keychain of this test's own, for tests that reason about which items exist."""
    with keychain_bus() as address:
        yield address


@pytest.fixture
def home() -> Iterator[Path]:
    path = make_home()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def fresh_daemon(home: Path) -> Iterator[Daemon]:
    """A daemon of its own, for tests that kill or reconfigure it."""
    daemon = start_daemon(home)
    yield daemon
    daemon.stop()


@pytest.fixture(scope="session")
def daemon() -> Iterator[Daemon]:
    """One daemon shared by the tests that only talk to it."""
    path = make_home("keep_alive = -1\n")
    daemon = start_daemon(path)
    yield daemon
    daemon.stop()
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def client(daemon: Daemon) -> Iterator[Client]:
    c = daemon.client()
    yield c
    c.close()
