"""`hearth service install | uninstall | status`, run as the user would, against a
temporary home and XDG directories. There is no systemd user manager in the test
environment (and a developer's own must not be touched): the command has to say so
and still write, enable and remove the files.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.cli.service import tray_available
from daemon.service import Launchd, ServiceError, for_platform
from tests.conftest import start_daemon


class Env:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / "hearth"  # HEARTH_HOME
        self.units = root / "config" / "systemd" / "user"
        self.vars = {
            **os.environ,
            "HOME": str(root),
            "HEARTH_HOME": str(self.home),
            "XDG_CONFIG_HOME": str(root / "config"),
            "XDG_DATA_HOME": str(root / "share"),
            "XDG_RUNTIME_DIR": str(root / "rt"),  # no systemd/private socket in there
        }

    def hearth(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "daemon", *args],
            env=self.vars, input=stdin, capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    def installed(self) -> set[str]:
        return {
            str(p.relative_to(self.root))
            for p in self.root.rglob("*")
            if p.is_file() or p.is_symlink()
        } - {str(p.relative_to(self.root)) for p in self.home.rglob("*")}


@pytest.fixture
def env() -> Iterator[Env]:
    root = Path(tempfile.mkdtemp(prefix="hs-", dir="/tmp"))
    (root / "rt").mkdir(mode=0o700)
    yield Env(root)
    shutil.rmtree(root, ignore_errors=True)


def test_install_writes_and_enables_the_units_and_says_no_manager_runs(env: Env) -> None:
    done = env.hearth("service", "install")
    assert done.returncode == 0, done.stderr
    assert "No systemd user manager is running here" in done.stdout
    socket_unit = (env.units / "hearth.socket").read_text()
    service_unit = (env.units / "hearth.service").read_text()
    assert f"ListenStream={env.home}/run/hearth.sock" in socket_unit
    assert f"ExecStart={sys.executable} -m daemon daemon" in service_unit
    assert f"Environment=TMPDIR={env.home}/run HEARTH_HOME={env.home}" in service_unit
    assert f"ReadWritePaths={env.home}/config {env.home}/data {env.home}/logs" in service_unit
    wants = env.units / "sockets.target.wants" / "hearth.socket"
    assert wants.is_symlink() and wants.resolve() == env.units / "hearth.socket"
    # ProtectSystem=strict: the writable directories must exist before the first start.
    assert all((env.home / d).is_dir() for d in ("config", "data", "models", "logs"))
    expected = {"config/systemd/user/hearth.socket", "config/systemd/user/hearth.service",
                "config/systemd/user/sockets.target.wants/hearth.socket"}  # fmt: skip
    if tray_available():
        expected |= {"config/autostart/hearth-tray.desktop",
                     "share/applications/hearth.desktop",
                     "share/icons/hicolor/scalable/apps/hearth.svg"}  # fmt: skip
    else:
        assert "skipped    the launcher and the tray's autostart" in done.stdout
    assert env.installed() == expected


def test_install_with_the_tray_adds_the_launcher_autostart_and_icon_and_uninstall_removes_them(
    env: Env,
) -> None:
    done = env.hearth("service", "install", "--tray")
    assert done.returncode == 0, done.stderr
    launcher = (env.root / "share" / "applications" / "hearth.desktop").read_text()
    autostart = (env.root / "config" / "autostart" / "hearth-tray.desktop").read_text()
    assert f"Exec={sys.executable} -m daemon tray" in launcher and "Icon=hearth" in launcher
    assert f"Exec={sys.executable} -m daemon tray" in autostart
    assert (
        (env.root / "share/icons/hicolor/scalable/apps/hearth.svg").read_text().startswith("<?xml")
    )
    assert len(env.installed()) == 6
    assert env.hearth("service", "uninstall").returncode == 0
    assert env.installed() == set()


def test_install_twice_changes_nothing_the_second_time(env: Env) -> None:
    assert env.hearth("service", "install").returncode == 0
    before = {p: (env.root / p).read_bytes() for p in env.installed()}
    mtimes = {p: (env.root / p).lstat().st_mtime_ns for p in env.installed()}
    again = env.hearth("service", "install")
    assert again.returncode == 0
    files = len(before) - 1  # all but the sockets.target.wants symlink
    assert "wrote" not in again.stdout and again.stdout.count("unchanged") == files
    assert {p: (env.root / p).read_bytes() for p in env.installed()} == before
    assert {p: (env.root / p).lstat().st_mtime_ns for p in env.installed()} == mtimes


def test_status_says_what_is_installed(env: Env) -> None:
    before = env.hearth("service", "status")
    assert before.returncode == 3 and "hearth.socket    not installed" in before.stdout
    env.hearth("service", "install")
    after = env.hearth("service", "status")
    assert after.returncode == 0, after.stdout
    assert f"hearth.socket    installed ({env.units / 'hearth.socket'})" in after.stdout
    assert "at login         enabled" in after.stdout
    assert "no user manager running here" in after.stdout


def test_uninstall_removes_the_units_and_lists_what_stays(env: Env) -> None:
    env.hearth("service", "install")
    (env.home / "config" / "config.toml").write_text("keep_alive = 5\n")
    done = env.hearth("service", "uninstall")
    assert done.returncode == 0, done.stderr
    assert env.installed() == set()
    assert "Kept, so nothing of yours is lost:" in done.stdout
    for folder in ("config", "data", "logs"):
        assert f"{env.home / folder}  (" in done.stdout
    assert "hearth service uninstall --purge" in done.stdout
    assert (env.home / "config" / "config.toml").read_text() == "keep_alive = 5\n"
    again = env.hearth("service", "uninstall")
    assert again.returncode == 0 and "nothing to remove" in again.stdout


def test_purge_deletes_nothing_unless_confirmed(env: Env) -> None:
    env.hearth("service", "install")
    (env.home / "data" / "vault.db").write_bytes(b"not really a vault")
    for answer in ("", "no\n", "y\n"):
        done = env.hearth("service", "uninstall", "--purge", stdin=answer)
        assert done.returncode == 1, done.stdout
        assert 'Type "yes" to delete all of this' in done.stdout
        assert "Nothing deleted." in done.stdout
        assert (env.home / "data" / "vault.db").read_bytes() == b"not really a vault"
    done = env.hearth("service", "uninstall", "--purge", stdin="yes\n")
    assert done.returncode == 0, done.stdout + done.stderr
    assert not env.home.exists()


def test_purge_yes_stops_the_daemon_and_deletes_data_and_keychain_items(
    env: Env, own_keychain: str
) -> None:
    import secretstorage

    env.vars["DBUS_SESSION_BUS_ADDRESS"] = own_keychain
    (env.home / "config").mkdir(parents=True)
    daemon = start_daemon(env.home)  # creates the vault and the audit log's keys
    try:
        with daemon.client() as c:  # both open in the background; wait for them
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                st = c.call("status")
                if st["vault"]["state"] != "starting" and st["network"]["audit"] != "starting":
                    break
                time.sleep(0.1)
            assert st["vault"]["state"] == "open", st["vault"]
        with secretstorage.dbus_init() as bus:
            collection = secretstorage.get_default_collection(bus)
            ours = [i.get_attributes()["username"] for i in collection.search_items(
                {"service": "hearth"})]  # fmt: skip
            assert any(a.startswith("vault-kek-") for a in ours), ours
            assert any(a.startswith("egress-") for a in ours), ours

            env.hearth("service", "install")
            done = env.hearth("service", "uninstall", "--purge", "--yes")
            assert done.returncode == 0, done.stdout + done.stderr
            assert f"stopped    the running daemon (pid {daemon.proc.pid})" in done.stdout
            listed = int(done.stdout.split(" keychain items (service")[0].split()[-1])
            assert listed >= len(ours)  # + the checkpoint the daemon wrote as it stopped
            assert f"Deleted 5 directories and {listed} keychain items." in done.stdout
            assert daemon.proc.wait(30) == 0
            assert not env.home.exists()
            assert list(collection.search_items({"service": "hearth"})) == []
            assert env.installed() == set()
    finally:
        daemon.stop()


def test_the_macos_agent_is_written_and_removed_without_launchctl(env: Env) -> None:
    agent = Launchd({**env.vars, "PATH": str(env.root)})
    lines: list[str] = []
    agent.install(lines.append, tray=False)
    plist = env.root / "Library" / "LaunchAgents" / "org.hearth.daemon.plist"
    assert plist.is_file() and any("launchctl was not found" in line for line in lines)
    import plistlib

    loaded = plistlib.loads(plist.read_bytes())
    assert loaded["ProgramArguments"] == [sys.executable, "-m", "daemon", "daemon"]
    assert loaded["Sockets"]["Listeners"]["SockPathName"] == f"{env.home}/run/hearth.sock"
    assert loaded["Sockets"]["Listeners"]["SockPathMode"] == 0o600
    assert loaded["EnvironmentVariables"] == {
        "HEARTH_LAUNCHD_SOCKET": "Listeners",
        "HEARTH_HOME": str(env.home),
    }
    again: list[str] = []
    agent.install(again.append, tray=False)
    assert any("unchanged" in line for line in again)
    assert agent.uninstall(lines.append) and not plist.exists()


def test_windows_is_refused_with_a_pointer_to_the_plan() -> None:
    with pytest.raises(ServiceError, match=r"packaging/windows/README\.md"):
        for_platform({}, "win32")
