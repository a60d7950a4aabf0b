"""The units under a real systemd user manager: socket activation, Type=notify, and
every hardening option of hearth.service, with a chat through the runner's sandbox.

The test machines boot without systemd, so this starts a user manager of its own in a
private mount namespace that looks booted (a tmpfs on /run/systemd with the marker
directory and the "inaccessible" nodes PID 1 would have made). It runs as root (CI
does), which is why the runner here can make its network namespace without a nested
user namespace; the unprivileged path is not covered.
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

import pytest

from daemon.client import Client

DEADLINE = 120.0

BOOTED = """set -e
mount --make-rprivate /
mount -t tmpfs tmpfs /run/systemd
mkdir -p /run/systemd/system /run/systemd/inaccessible
cd /run/systemd/inaccessible
touch reg; mkdir dir; mkfifo fifo; mknod chr c 0 0; mknod blk b 0 0
"$PYTHON" -c "import socket; socket.socket(socket.AF_UNIX).bind('sock')"
chmod 0000 reg dir fifo chr blk sock
cd /
exec /lib/systemd/systemd --user --log-target=kmsg
"""


class Manager:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = {
            **os.environ,
            "HOME": str(root),
            "XDG_RUNTIME_DIR": str(root / "rt"),
            "XDG_CONFIG_HOME": str(root / "config"),
            "XDG_DATA_HOME": str(root / "share"),
            "XDG_STATE_HOME": str(root / "state"),
        }
        self.env.pop("DBUS_SESSION_BUS_ADDRESS", None)
        self.proc = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", BOOTED],
            env={**self.env, "PYTHON": sys.executable},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def systemctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["systemctl", "--user", *args], env=self.env, capture_output=True, text=True
        )

    def hearth(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "daemon", *args],
            env=self.env, cwd=self.root, capture_output=True, text=True, timeout=DEADLINE,
        )  # fmt: skip

    def wait_ready(self) -> None:
        deadline = time.monotonic() + DEADLINE
        while self.systemctl("show", "--property=SystemState").returncode != 0:
            if self.proc.poll() is not None:
                pytest.fail(f"the user manager exited ({self.proc.returncode}): see dmesg")
            assert time.monotonic() < deadline, "the user manager did not answer"
            time.sleep(0.2)


@pytest.fixture
def manager() -> Iterator[Manager]:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("emulating a booted systemd needs root and unshare (CI has both)")
    if not Path("/lib/systemd/systemd").exists():
        pytest.fail("systemd is missing: run `bash tests/system-deps.sh` first")
    root = Path(tempfile.mkdtemp(prefix="hm-", dir="/tmp"))
    (root / "rt").mkdir(mode=0o700)
    manager = Manager(root)
    try:
        manager.wait_ready()
        yield manager
    finally:
        manager.systemctl("stop", "hearth.socket", "hearth.service")
        manager.proc.send_signal(signal.SIGTERM)
        try:
            manager.proc.wait(30)
        except subprocess.TimeoutExpired:
            manager.proc.kill()
            manager.proc.wait()
        shutil.rmtree(root, ignore_errors=True)


def test_the_hardened_units_serve_a_chat_under_a_real_user_manager(manager: Manager) -> None:
    done = manager.hearth("service", "install", "--no-tray")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Started: hearth.socket listens" in done.stdout
    if os.environ.get("PYTHONPATH"):  # run the code under test, not the venv's install
        dropin = manager.root / "config/systemd/user/hearth.service.d/test.conf"
        dropin.parent.mkdir(parents=True)
        dropin.write_text(f"[Service]\nEnvironment=PYTHONPATH={os.environ['PYTHONPATH']}\n")
        assert manager.systemctl("daemon-reload").returncode == 0
    assert manager.systemctl("is-active", "hearth.service").stdout.strip() == "inactive"

    sock = manager.root / "rt" / "hearth" / "hearth.sock"
    with Client.connect(sock, "user-manager-test") as client:
        result = client.call(
            "chat",
            {
                "messages": [{"role": "user", "content": "Say hello."}],
                "options": {"temperature": 0, "max_tokens": 8},
                "store": False,
            },
        )
        assert result["text"].strip()
        runner = client.call("status")["runners"][0]["pid"]

    show = manager.systemctl("show", "hearth.service", "-p", "ActiveState,StatusText,MainPID")
    props = dict(line.split("=", 1) for line in show.stdout.splitlines())
    assert props["ActiveState"] == "active"  # READY=1 reached systemd (Type=notify)
    assert props["StatusText"] == f"serving on {sock}"
    daemon = props["MainPID"]
    assert Path(f"/proc/{daemon}/status").read_text().count("NoNewPrivs:\t1") == 1
    assert os.readlink(f"/proc/{runner}/ns/net") != os.readlink(f"/proc/{daemon}/ns/net")

    done = manager.hearth("service", "uninstall")
    assert done.returncode == 0, done.stdout + done.stderr
    assert manager.systemctl("is-active", "hearth.socket").stdout.strip() == "inactive"
    assert not sock.exists()  # RemoveOnStop=yes
