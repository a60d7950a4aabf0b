"""A keychain that never answers holds up neither start-up nor chats that store nothing.

The Secret Service here is a small D-Bus service of the test's own
(tests/daemon/vault/hung_keychain.py) on a private bus: it owns the name, so keyring
picks it, and it never replies, like a stuck gnome-keyring. Then it goes away, and a
real gnome-keyring takes its place on the same bus.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from daemon.client import Client
from daemon.errors import DaemonUnavailable, VaultLocked
from daemon.paths import Paths
from daemon.vault.service import KEYCHAIN_SLOW
from tests.daemon.vault.running import say

FAKE = Path(__file__).with_name("hung_keychain.py")


class Bus:
    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="hk-", dir="/tmp"))
        env = {k: v for k, v in os.environ.items() if not k.startswith("DBUS")}
        self.env = {**env, "HOME": str(self.root), "XDG_RUNTIME_DIR": str(self.root)}
        script = 'echo "$DBUS_SESSION_BUS_ADDRESS" && exec cat >/dev/null'
        self.session = subprocess.Popen(
            ["dbus-run-session", "--", "sh", "-c", script], env=self.env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        assert self.session.stdout is not None
        self.address = self.session.stdout.readline().decode().strip()
        assert self.address, "could not start a D-Bus session"
        self.env["DBUS_SESSION_BUS_ADDRESS"] = self.address
        self.fake = subprocess.Popen(
            [sys.executable, str(FAKE)], env=self.env, stdout=subprocess.PIPE, text=True
        )
        assert self.fake.stdout is not None
        assert self.fake.stdout.readline().strip() == "owned 1"

    def calls(self) -> IO[str]:
        assert self.fake.stdout is not None
        return self.fake.stdout

    def real_keyring(self) -> None:
        """Replace the hung service by an unlocked gnome-keyring on the same bus."""
        self.fake.kill()
        self.fake.wait()
        subprocess.run(
            ["gnome-keyring-daemon", "--unlock", "--components=secrets"],
            input=b"test-login", env=self.env, stdout=subprocess.DEVNULL, check=True, timeout=30,
        )  # fmt: skip

    def close(self) -> None:
        if self.fake.poll() is None:
            self.fake.kill()
            self.fake.wait()
        assert self.session.stdin is not None
        self.session.stdin.close()  # ends cat, the bus and the keyring on it
        try:
            self.session.wait(10)
        except subprocess.TimeoutExpired:
            self.session.kill()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def bus() -> Iterator[Bus]:
    for tool in ("dbus-run-session", "gnome-keyring-daemon"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: run `bash tests/system-deps.sh` first")
    b = Bus()
    yield b
    b.close()


def spawn(home: Path, bus: Bus) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHON_KEYRING_BACKEND"}
    env.update(HEARTH_HOME=str(home), DBUS_SESSION_BUS_ADDRESS=bus.address)
    return subprocess.Popen([sys.executable, "-m", "daemon", "daemon"], env=env)


def first_status(home: Path, proc: subprocess.Popen[bytes]) -> tuple[Client, dict[str, Any]]:
    sock = Paths.from_env({"HEARTH_HOME": str(home)}).socket
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the daemon exited"
        try:
            client = Client.connect(sock, "test")
            return client, client.call("status")
        except (DaemonUnavailable, ConnectionError):
            time.sleep(0.005)
    raise AssertionError("the daemon never answered")


def until(check: Any, what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def startup_limit() -> float:
    """1 s, the figure on an idle machine; more when other work already fills the CPUs
    (the suite runs beside other jobs), since then Python's own start-up stretches."""
    busy = os.getloadavg()[0] >= (os.cpu_count() or 1)
    return 10.0 if busy else 1.0


def test_status_and_store_false_chats_work_while_the_keychain_hangs_and_the_vault_opens_once_it_answers(  # noqa: E501
    home: Path, bus: Bus
) -> None:
    started = time.monotonic()
    proc = spawn(home, bus)
    try:
        client, status = first_status(home, proc)
        assert time.monotonic() - started < startup_limit()
        # The daemon did ask the keychain, which has not answered.
        assert bus.calls().readline().strip()
        assert until(lambda: client.call("status")["vault"]["state"] == "starting", "starting")

        answer = say(client, "Say hello.", store=False)
        assert answer["text"] and answer["stored"] is False
        with pytest.raises(VaultLocked) as locked:
            say(client, "Keep this one.")
        assert locked.value.data["reason"] in ("starting", "keychain_timeout")

        time.sleep(KEYCHAIN_SLOW)
        vault = client.call("vault.status")
        assert vault["locked"] and vault["reason"] == "keychain_timeout"
        assert "has not answered" in vault["message"] and '"store": false' in vault["message"]
        status = client.call("status")
        assert status["vault"] == {"state": "starting", "reason": "keychain_timeout"}
        assert status["network"]["audit"] == "keychain_timeout"

        bus.real_keyring()  # the hung call fails; the next use finds a working keychain
        vault = until(lambda: (v := client.call("vault.status"))["locked"] is False and v, "open")
        assert vault["protection"] == "keychain"
        stored = say(client, "Keep this one.")
        assert stored["stored"] is True
        assert client.call("status")["vault"] == {"state": "open", "reason": None}
        # The audit log's keys were asked of the hung service too: that failure is reported.
        assert client.call("status")["network"]["audit"] == "unavailable"
        client.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def test_the_daemon_stops_promptly_while_the_keychain_hangs(home: Path, bus: Bus) -> None:
    proc = spawn(home, bus)
    try:
        client, _ = first_status(home, proc)
        assert bus.calls().readline().strip()
        client.call("vault.status")  # a request that waits on the keychain, then gives up
        client.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
