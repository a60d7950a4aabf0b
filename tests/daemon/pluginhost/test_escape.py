"""A plugin written to misbehave, run through `hearth plugins run` against the real daemon:
every way out of its sandbox is refused by the operating system, and every limit holds
while the daemon and other plugins keep working."""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from .support import TEST_PLUGINS, PluginDaemon, copy_plugin, plugin_daemon, wait_for

EXIT_FAILED, EXIT_REFUSED, EXIT_LIMIT = 1, 3, 4


@pytest.fixture(scope="module")
def daemon() -> Iterator[PluginDaemon]:
    with plugin_daemon() as d:
        (d.user_home / ".ssh").mkdir(mode=0o700)
        (d.user_home / ".ssh" / "id_rsa").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
        (d.user_home / "granted").mkdir()
        d.install(TEST_PLUGINS / "escape")
        yield d


@pytest.fixture
def listener() -> Iterator[tuple[socket.socket, int]]:
    """A TCP server on loopback that counts who reached it."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.1)
    yield server, server.getsockname()[1]
    server.close()


def run(d: PluginDaemon, *args: str) -> tuple[int, str, str]:
    out = d.hearth("plugins", "run", "escape", *args)
    return out.returncode, out.stdout.strip(), out.stderr.strip()


def test_a_connection_without_network_permission_fails(
    daemon: PluginDaemon, listener: tuple[socket.socket, int]
) -> None:
    server, port = listener
    code, _, err = run(daemon, "connect", "127.0.0.1", str(port))
    assert code == EXIT_FAILED
    assert "PermissionError" in err or "Network is unreachable" in err
    with pytest.raises(TimeoutError):
        server.accept()  # nothing arrived
    code, _, err = run(daemon, "connect", "192.0.2.1", "80")  # TEST-NET: never routed
    assert code == EXIT_FAILED and "Error" in err


def test_fetching_a_host_it_was_not_granted_is_egress_denied_and_audited(
    daemon: PluginDaemon,
) -> None:
    code, _, err = run(daemon, "fetch", "http://127.0.0.1:9/secret?token=x")
    assert code == EXIT_REFUSED
    assert "escape may not reach 127.0.0.1: its manifest grants example.com" in err
    entries = daemon.call("audit.list", {"caller": "plugin:escape"})["entries"]
    intent = [e for e in entries if e["phase"] == "intent" and e["host"] == "127.0.0.1"][-1]
    assert intent["decision"] == "deny" and intent["rule"] == "plugin permissions"
    assert intent["path"] == "/secret"  # the query (token) is never logged
    assert daemon.call("audit.verify")["ok"] is True


@pytest.mark.parametrize(
    "target",
    [
        lambda d: d.user_home / ".ssh" / "id_rsa",
        lambda d: d.paths.data / "vault.db",
        lambda d: d.paths.socket,
        lambda d: d.paths.config / "plugins.json",
    ],
    ids=["ssh-key", "vault", "daemon-socket", "plugin-grants"],
)
def test_reading_secrets_outside_its_grants_gets_permission_error(
    daemon: PluginDaemon, target: object
) -> None:
    path = target(daemon)  # type: ignore[operator]
    assert Path(path).exists()
    code, out, err = run(daemon, "read", str(path))
    assert code == EXIT_FAILED, out
    assert f"PermissionError: [Errno 13] Permission denied: '{path}'" in err


def test_writing_outside_its_data_dir_and_grants_gets_permission_error(
    daemon: PluginDaemon,
) -> None:
    for path in (
        daemon.user_home / "evil.txt",
        daemon.paths.config / "evil.txt",
        Path("/tmp") / f"evil-{daemon.root.name}",
    ):
        code, _, err = run(daemon, "write", str(path))
        assert code == EXIT_FAILED and "PermissionError" in err, err
        assert not path.exists()
    code, out, _ = run(daemon, "write", str(daemon.user_home / "granted" / "ok.txt"))
    assert code == 0 and (daemon.user_home / "granted" / "ok.txt").read_text() == "escaped"
    code, out, _ = run(daemon, "write-data")
    assert code == 0 and Path(out).read_text() == "fine"
    assert Path(out).parent == daemon.paths.data / "plugins" / "escape"


def _other_plugin_and_daemon_work(d: PluginDaemon, results: list[str]) -> None:
    results.append(d.hearth("plugins", "run", "hello", "hi", "there").stdout.strip())
    results.append(str(d.call("status")["pid"]))


@pytest.fixture(scope="module")
def hello(daemon: PluginDaemon, tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("p") / "hello"
    folder.mkdir()
    (folder / "plugin.toml").write_text('id = "hello"\n')
    (folder / "plugin.py").write_text(
        "from plugins.sdk import Plugin\nplugin = Plugin()\n\n"
        "@plugin.command('hi')\ndef hi(ctx, name):\n    return f'hi {name}'\n"
    )
    daemon.install(folder)
    return "hello"


@pytest.fixture(scope="module")
def roomy(daemon: PluginDaemon, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The escape plugin with time to fill its memory at nice 19 on a busy machine:
    what must stop it here is the limit under test, not the timeout."""
    folder = copy_plugin(
        TEST_PLUGINS / "escape",
        tmp_path_factory.mktemp("r") / "roomy",
        {'id = "escape"': 'id = "roomy"', "timeout = 10": "timeout = 240"},
    )
    daemon.install(folder)
    return "roomy"


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("hog", "roomy hit its memory limit (256 MiB) and was stopped"),
        ("forkbomb", "roomy hit its process limit (16 processes and threads) and was stopped"),
    ],
)
def test_a_memory_hog_and_a_fork_bomb_are_stopped_while_everything_else_works(
    daemon: PluginDaemon, hello: str, roomy: str, command: str, message: str
) -> None:
    before = daemon.info(roomy)
    others: list[str] = []
    side = threading.Thread(target=_other_plugin_and_daemon_work, args=(daemon, others))
    side.start()
    code, _, err = daemon_run(daemon, roomy, command)
    side.join()
    assert code == EXIT_LIMIT, err
    assert message in err
    assert others == ["hi there", str(daemon.call("status")["pid"])]
    info = daemon.info(roomy)
    assert info["limit_hits"] == before["limit_hits"] + 1
    assert info["problem"].startswith(message)
    assert message in daemon.log_text(roomy)
    listed = daemon.hearth("plugins", "list")
    assert "last problem: " + message in listed.stdout
    # Nothing of it is left running, and it serves its next call.
    assert daemon_run(daemon, roomy, "ping")[:2] == (0, "pong")
    assert daemon.hearth("plugins", "run", "hello", "hi", "again").stdout.strip() == "hi again"


def test_an_infinite_loop_is_killed_at_its_timeout(daemon: PluginDaemon) -> None:
    before = daemon.info("escape")
    code, _, err = run(daemon, "loop")
    assert code == EXIT_LIMIT
    assert "escape ran past its 10 s timeout and was killed" in err
    info = daemon.info("escape")
    assert info["timeouts"] == before["timeouts"] + 1
    assert info["pid"] != before["pid"]  # a new life
    assert run(daemon, "ping")[:2] == (0, "pong")
    listed = json.loads(daemon.hearth("plugins", "list", "--json").stdout)
    assert next(p for p in listed if p["id"] == "escape")["timeouts"] >= 1


def test_a_fork_bomb_leaves_no_process_behind(daemon: PluginDaemon, roomy: str) -> None:
    code, _, _ = daemon_run(daemon, roomy, "forkbomb")
    assert code == EXIT_LIMIT

    def strays() -> list[int]:
        """Plugin processes of this daemon that are no plugin's current life."""
        lives = {p["pid"] for p in daemon.call("plugins.list")["plugins"]}
        home = f"HOME={daemon.user_home}".encode()
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    cmdline = (entry / "cmdline").read_bytes()
                    environ = (entry / "environ").read_bytes().split(b"\0")
                except OSError:
                    continue
                if b"pluginhost.child" in cmdline and home in environ:
                    found.append(int(entry.name))
        return [pid for pid in found if pid not in lives]

    wait_for(lambda: not strays(), 30, "the fork bomb's processes to be gone")


def test_the_escape_plugin_sandbox_is_fully_in_place(daemon: PluginDaemon) -> None:
    sandbox = daemon.info("escape")["sandbox"]
    assert sandbox["missing"] == []
    assert set(sandbox["layers"]) == {
        "files",
        "network",
        "no_new_privs",
        "processes",
        "scope",
        "sockets",
    }
    assert sandbox["layers"]["network"] == "network namespace + Landlock TCP"


def test_a_copy_with_network_permission_still_cannot_open_sockets(
    daemon: PluginDaemon, tmp_path: Path, listener: tuple[socket.socket, int]
) -> None:
    """Network permission is for ctx.fetch: the process itself still has no network."""
    server, port = listener
    folder = copy_plugin(
        TEST_PLUGINS / "escape",
        tmp_path / "escape2",
        {'id = "escape"': 'id = "escape2"', '["example.com"]': '["127.0.0.1"]'},
    )
    daemon.install(folder)
    out = daemon.hearth("plugins", "run", "escape2", "connect", "127.0.0.1", str(port))
    assert out.returncode == EXIT_FAILED
    with pytest.raises(TimeoutError):
        server.accept()


def test_connecting_to_the_daemons_socket_or_any_unix_socket_gets_permission_error(
    daemon: PluginDaemon, tmp_path: Path
) -> None:
    """Landlock does not cover connect() by path: the seccomp layer does."""
    code, out, err = run(daemon, "unix", str(daemon.paths.socket))
    assert code == EXIT_FAILED, out
    assert "PermissionError: [Errno 1] Operation not permitted" in err
    before = daemon.call("plugins.info", {"id": "escape"})["enabled"]
    assert before  # nothing was changed through the main socket


def test_a_crash_restarts_the_plugin_with_backoff(daemon: PluginDaemon) -> None:
    before = daemon.info("escape")
    code, _, err = run(daemon, "crash")
    assert code == EXIT_FAILED
    assert "the escape plugin process died (signal SIGSEGV)" in err
    info = daemon.info("escape")
    assert info["crashes"] == before["crashes"] + 1
    assert info["problem"] == "crashed (signal SIGSEGV); restarting in 1 s"
    wait_for(lambda: daemon.info("escape")["state"] == "running", 30, "the restart")
    assert run(daemon, "crash")[0] == EXIT_FAILED  # again at once: the delay doubles
    assert daemon.info("escape")["problem"] == "crashed (signal SIGSEGV); restarting in 2 s"
    wait_for(lambda: daemon.info("escape")["state"] == "running", 30, "the second restart")
    assert "crashed (signal SIGSEGV); restarting in 2 s" in daemon.log_text("escape")
    assert run(daemon, "ping")[:2] == (0, "pong")


def test_plugins_run_at_the_lowest_cpu_priority(daemon: PluginDaemon) -> None:
    pid = daemon.info("escape")["pid"]
    assert os.getpriority(os.PRIO_PROCESS, pid) == 19
    assert os.getpriority(os.PRIO_PROCESS, daemon.proc.pid) == 0


def test_using_up_its_cpu_time_stops_it(tmp_path: Path) -> None:
    """At normal priority (a test hook), so a busy machine delays it by a share, not
    starves it; the limit counts CPU seconds, whatever the wall clock says."""
    folder = copy_plugin(
        TEST_PLUGINS / "escape",
        tmp_path / "cpu",
        {'id = "escape"': 'id = "escape-cpu"', "timeout = 10": "timeout = 240\ncpu_seconds = 2"},
    )
    with plugin_daemon(HEARTH_PLUGIN_SANDBOX_DISABLE="nice") as daemon:
        daemon.install(folder)
        code, _, err = daemon_run(daemon, "escape-cpu", "loop")
        assert code == EXIT_LIMIT
        assert "escape-cpu hit its CPU time limit (2 s) and was stopped" in err
        info = daemon.info("escape-cpu")
        assert info["crashes"] == 0 and info["limit_hits"] == 1
        assert daemon_run(daemon, "escape-cpu", "ping")[:2] == (0, "pong")


def daemon_run(d: PluginDaemon, plugin: str, *args: str) -> tuple[int, str, str]:
    out = d.hearth("plugins", "run", plugin, *args)
    return out.returncode, out.stdout.strip(), out.stderr.strip()
