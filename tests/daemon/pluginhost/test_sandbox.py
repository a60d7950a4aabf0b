"""Where a sandbox layer is missing the plugin is refused, or runs degraded and says
which layer: never silently unsandboxed. (HEARTH_PLUGIN_SANDBOX_DISABLE, honoured only
with HEARTH_TEST_HOOKS=1, makes the daemon act as on a kernel without that layer.)"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from .support import REPO, TEST_PLUGINS, plugin_daemon, wait_for


@pytest.mark.parametrize(("layer", "missing"), [("landlock", "files"), ("seccomp", "sockets")])
def test_without_a_required_layer_a_plugin_is_refused_and_says_why(
    layer: str, missing: str
) -> None:
    with plugin_daemon(HEARTH_PLUGIN_SANDBOX_DISABLE=layer) as d:
        d.install(TEST_PLUGINS / "escape", enable=False)
        d.hearth("plugins", "enable", "escape", "--yes")
        info = d.info("escape")
        assert info["state"] == "refused"
        assert (
            f"the plugin sandbox is incomplete on this system (missing: {missing})"
            in (info["problem"])
        )
        run = d.hearth("plugins", "run", "escape", "ping")
        assert run.returncode == 2 and f"missing: {missing}" in run.stderr
        assert "refused" in d.hearth("plugins", "list").stdout


def test_without_a_network_namespace_landlock_still_blocks_tcp() -> None:
    with plugin_daemon(HEARTH_PLUGIN_SANDBOX_DISABLE="netns") as d:
        d.install(TEST_PLUGINS / "escape")
        info = d.info("escape")
        assert info["sandbox"]["layers"]["network"] == "Landlock TCP"
        out = d.hearth("plugins", "run", "escape", "connect", "127.0.0.1", "9")
        assert out.returncode == 1 and "PermissionError" in out.stderr


def test_without_a_process_limit_mechanism_the_plugin_runs_degraded_and_says_so() -> None:
    with plugin_daemon(HEARTH_PLUGIN_SANDBOX_DISABLE="cgroup") as d:
        d.install(TEST_PLUGINS / "escape")
        info = d.info("escape")
        assert info["state"] == "running"
        assert info["sandbox"]["missing"] == ["processes"] and info["sandbox"]["degraded"]
        assert "running (degraded: no processes)" in d.hearth("plugins", "list").stdout
        assert "sandbox: processes: MISSING" in d.hearth("plugins", "info", "escape").stdout
        assert "(degraded: no processes)" in d.log_text("escape")
        assert d.hearth("plugins", "run", "escape", "ping").stdout.strip() == "pong"


def test_the_landlock_module_confines_a_process_on_its_own(tmp_path: Path) -> None:
    """daemon.sandbox.landlock, reusable outside the plugin host: files and TCP."""
    (tmp_path / "allowed").mkdir()
    (tmp_path / "secret").write_text("no")
    script = textwrap.dedent(f"""
        import json, socket, sys
        from daemon.sandbox import landlock
        landlock.no_new_privs()
        report = landlock.Ruleset().allow(sys.path[1:] + ["/usr", "/lib", "/lib64"],
            landlock.READ_EXEC).allow([{str(tmp_path / "allowed")!r}],
            landlock.READ | landlock.WRITE).restrict_self()
        out = {{"report": report}}
        open({str(tmp_path / "allowed" / "ok")!r}, "w").write("ok")
        for name, action in [
            ("read", lambda: open({str(tmp_path / "secret")!r}).read()),
            ("write", lambda: open({str(tmp_path / "new")!r}, "w")),
            ("tcp", lambda: socket.create_connection(("127.0.0.1", 9), timeout=2)),
        ]:
            try:
                action()
                out[name] = "allowed"
            except PermissionError:
                out[name] = "denied"
            except OSError as exc:
                out[name] = type(exc).__name__
        print(json.dumps(out))
    """)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["report"]["files"] and out["report"]["tcp"]
    assert (out["read"], out["write"], out["tcp"]) == ("denied", "denied", "denied")
    assert (tmp_path / "allowed" / "ok").read_text() == "ok"
    assert not (tmp_path / "new").exists()


def test_plugins_die_with_the_daemon_even_when_busy() -> None:
    with plugin_daemon() as d:
        d.install(TEST_PLUGINS / "escape")
        pid = d.info("escape")["pid"]
        busy = subprocess.Popen(
            [sys.executable, "-m", "daemon", "plugins", "run", "escape", "loop"],
            env=d.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for(lambda: _cpu_ticks(pid) > 0, 30, "the loop to run")
            d.proc.kill()  # kill -9: no shutdown, no goodbye to the plugins
            d.proc.wait(10)
            wait_for(lambda: not Path(f"/proc/{pid}").exists(), 30, "the plugin to die")
        finally:
            busy.kill()
            busy.wait()


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


FORK_COUNT = """
import json, os, sys
from pathlib import Path
from daemon.pluginhost import sandbox
limits = {"memory_mb": 512, "cpu_seconds": 60, "timeout": 10, "processes": 8, "open_files": 64}
report = sandbox.apply(sandbox.plan(folder=Path(sys.argv[1]), data_dir=Path(sys.argv[1]),
                       read=[], write=[], limits=limits, cgroup=False, disable=[]))
forked = 0
try:
    while forked < 100:
        if os.fork() == 0:
            import time
            time.sleep(5)
            os._exit(0)
        forked += 1
except BlockingIOError:
    pass
print(json.dumps({"processes": report["layers"].get("processes"), "forked": forked}))
"""


def test_as_an_ordinary_user_the_process_limit_counts_only_the_plugins_processes() -> None:
    """Without root (no cgroup), RLIMIT_NPROC inside the plugin's own user namespace
    stops a fork bomb: 8 processes in all, whatever else the user runs."""
    if shutil.which("setpriv") is None:
        pytest.fail("setpriv (util-linux) is needed to run as another user")
    root = Path(tempfile.mkdtemp(prefix="hn-", dir="/tmp"))
    try:
        for module in (
            "daemon/__init__.py",
            "daemon/sandbox/__init__.py",
            "daemon/sandbox/landlock.py",
            "daemon/sandbox/seccomp.py",
            "daemon/pluginhost/__init__.py",
            "daemon/pluginhost/sandbox.py",
            "plugins/__init__.py",
        ):
            (root / module).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(REPO / module, root / module)
        for path in [root, *root.rglob("*")]:
            path.chmod(0o777 if path.is_dir() else 0o644)
        done = subprocess.run(
            [
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                sys.executable,
                "-c",
                FORK_COUNT,
                str(root),
            ],
            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root)},
            cwd=root,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        out = json.loads(done.stdout)
        assert out == {"processes": "RLIMIT_NPROC in a user namespace (at most 8)", "forked": 7}
    finally:
        shutil.rmtree(root, ignore_errors=True)
