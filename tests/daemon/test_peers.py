"""The daemon refuses a same-user peer that runs in another network namespace: a
sandboxed runner or plugin, which must not reach the network through the daemon."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import Daemon

CLIENT = """
import sys
from daemon.client import Client
try:
    with Client.connect(sys.argv[1], "sandboxed") as c:
        print("answered", c.call("net.set_mode", {"mode": "allow-listed"})["mode"])
except Exception as exc:
    print("refused", type(exc).__name__)
"""


def _run_client(daemon: Daemon, *wrapper: str) -> str:
    done = subprocess.run(
        [*wrapper, sys.executable, "-c", CLIENT, str(daemon.paths.socket)],
        env=daemon.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_peer_in_another_network_namespace_is_refused_before_a_byte_is_read(
    fresh_daemon: Daemon,
) -> None:
    if shutil.which("unshare") is None:
        pytest.fail("unshare (util-linux) is missing: run `bash tests/system-deps.sh` first")
    unshare = (
        ["unshare", "--net"] if os.geteuid() == 0 else ["unshare", "--net", "--map-current-user"]
    )
    assert _run_client(fresh_daemon, *unshare).startswith("refused")
    with fresh_daemon.client() as c:
        assert c.call("net.status")["mode"] == "offline"  # the request never ran
    log = (fresh_daemon.home / "logs" / "daemon.log").read_text()
    assert "runs in another network namespace (a sandboxed runner or plugin)" in log
    assert _run_client(fresh_daemon) == "answered allow-listed"  # the same client, not sandboxed
