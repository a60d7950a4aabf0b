"""Starting, stopping and crashing the daemon; its socket; what it listens on."""

from __future__ import annotations

import fcntl
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

from daemon.client import EXIT_ALREADY_RUNNING
from tests.conftest import Daemon, make_home, start_daemon


def hearth(home: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "daemon", *args],
        env={**os.environ, "HEARTH_HOME": str(home)},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_socket_is_private_in_a_private_directory(fresh_daemon: Daemon) -> None:
    sock = fresh_daemon.paths.socket
    assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(sock.parent).st_mode) == 0o700


def test_a_second_daemon_is_refused_and_leaves_the_socket_alone(fresh_daemon: Daemon) -> None:
    inode = os.stat(fresh_daemon.paths.socket).st_ino
    second = hearth(fresh_daemon.home, "daemon")
    assert second.returncode == EXIT_ALREADY_RUNNING
    assert "already running" in second.stderr
    assert os.stat(fresh_daemon.paths.socket).st_ino == inode
    with fresh_daemon.client() as c:
        assert c.call("status")["pid"] == fresh_daemon.proc.pid


def test_a_stale_socket_left_by_a_killed_daemon_is_reclaimed(home: Path) -> None:
    first = start_daemon(home)
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait()
    assert first.paths.socket.exists()  # the corpse's socket is still there
    second = start_daemon(home)
    try:
        with second.client() as c:
            assert c.call("status")["pid"] == second.proc.pid
    finally:
        second.stop()


def test_a_symlink_at_the_socket_path_is_refused(home: Path, tmp_path: Path) -> None:
    run = home / "run"
    run.mkdir(mode=0o700)
    target = tmp_path / "elsewhere"
    target.write_text("precious")
    (run / "hearth.sock").symlink_to(target)
    result = hearth(home, "daemon")
    assert result.returncode == 1 and "not a socket" in result.stderr
    assert target.read_text() == "precious"


def test_sigterm_stops_runners_and_removes_the_socket(fresh_daemon: Daemon) -> None:
    with fresh_daemon.client() as c:
        c.call(
            "chat", {"messages": [{"role": "user", "content": "hi"}], "options": {"max_tokens": 2}}
        )
        runner = c.call("status")["runners"][0]["pid"]
    fresh_daemon.proc.send_signal(signal.SIGTERM)
    assert fresh_daemon.proc.wait(20) == 0
    assert not fresh_daemon.paths.socket.exists()
    assert not Path(f"/proc/{runner}").exists() or "Z" in Path(f"/proc/{runner}/stat").read_text()


def _inet_inodes(pid: int) -> set[str]:
    inodes = set()
    for table in ("tcp", "tcp6", "udp", "udp6", "raw", "raw6"):
        path = Path(f"/proc/{pid}/net/{table}")
        if path.exists():
            for line in path.read_text().splitlines()[1:]:
                inodes.add(line.split()[9])
    return inodes


def _socket_inodes(pid: int) -> set[str]:
    found = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            found.add(target[8:-1])
    return found


def test_the_daemon_holds_no_inet_sockets(fresh_daemon: Daemon) -> None:
    with fresh_daemon.client() as c:
        c.call(
            "chat", {"messages": [{"role": "user", "content": "hi"}], "options": {"max_tokens": 4}}
        )
        runner = c.call("status")["runners"][0]["pid"]
        pid = fresh_daemon.proc.pid
        sockets = _socket_inodes(pid)
        assert sockets  # the Unix listener and our connection, at least
        assert not sockets & _inet_inodes(pid)
        assert not _socket_inodes(runner) & _inet_inodes(runner)


def test_keep_alive_zero_unloads_after_each_request() -> None:
    home = make_home("keep_alive = 0\n")
    daemon = start_daemon(home)
    try:
        with daemon.client() as c:
            c.call(
                "chat",
                {"messages": [{"role": "user", "content": "hi"}], "options": {"max_tokens": 2}},
            )
            deadline = time.monotonic() + 10
            while c.call("status")["runners"] and time.monotonic() < deadline:
                time.sleep(0.05)
            assert c.call("status")["runners"] == []
    finally:
        daemon.stop()


def test_cli_chat_streams_and_status_json_matches(home: Path) -> None:
    try:
        out = hearth(home, "chat", "--temperature", "0", "--max-tokens", "6", "Say hello")
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip()
        status = hearth(home, "status", "--json")
        assert status.returncode == 0 and '"pid"' in status.stdout
    finally:
        hearth(home, "down")
    assert hearth(home, "status").returncode == 3


def test_cli_rewrite_reads_stdin(home: Path) -> None:
    try:
        out = hearth(home, "rewrite", "-p", "proofread", "--max-tokens", "30", stdin="i has a cat")
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip()
    finally:
        hearth(home, "down")


def test_cli_errors_are_one_line_and_a_nonzero_exit(home: Path) -> None:
    try:
        out = hearth(home, "chat", "-m", "no-such-model", "hi")
        assert out.returncode == 2
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("hearth: no model named")
    finally:
        hearth(home, "down")


def test_cli_import_refuses_garbage_and_accepts_a_real_model(home: Path, tmp_path: Path) -> None:
    from daemon.engine.registry import default_model_path

    garbage = tmp_path / "garbage.gguf"
    garbage.write_bytes(b"GGUF" + os.urandom(4096))
    real = tmp_path / "Copy.Q4_1.gguf"
    source = default_model_path()
    assert source
    real.symlink_to(source)
    try:
        bad = hearth(home, "models", "import", str(garbage))
        assert bad.returncode == 2 and bad.stderr.startswith("hearth: garbage.gguf is not a valid")
        good = hearth(home, "models", "import", str(real))
        assert good.returncode == 0, good.stderr
        assert hearth(home, "models", "load", "copy.q4_1").returncode == 0
        listed = hearth(home, "models", "list")
        row = next(line.split() for line in listed.stdout.splitlines() if "copy.q4_1" in line)
        # name, format, quant, size (2 words), context, engine, also on, loaded on, sha256
        assert row[:3] == ["copy.q4_1", "gguf", "Q4_1"]
        assert row[6:9] == ["llamacpp", "mlx", "llamacpp"]
        assert hearth(home, "models", "rm", "copy.q4_1").returncode == 0
        assert "copy.q4_1" not in hearth(home, "models", "list").stdout
    finally:
        hearth(home, "down")


def test_cli_chat_without_a_usable_vault_says_so_and_still_answers(home: Path) -> None:
    env = {**os.environ, "HEARTH_HOME": str(home),
           "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}  # fmt: skip
    run = [sys.executable, "-m", "daemon"]
    try:
        out = subprocess.run([*run, "chat", "--max-tokens", "4", "hi"], env=env,
                             capture_output=True, text=True, timeout=120)  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip()
        assert "will not be kept" in out.stderr and "vault init --passphrase" in out.stderr
    finally:
        subprocess.run([*run, "down"], env=env, capture_output=True, timeout=60)


def test_each_models_action_takes_only_its_own_arguments(home: Path) -> None:
    wrong = hearth(home, "models", "list", "--sha256", "abc")  # a pull flag
    assert wrong.returncode == 2 and "unrecognized arguments: --sha256" in wrong.stderr
    missing = hearth(home, "models", "load")
    assert missing.returncode == 2 and "model" in missing.stderr
    helped = hearth(home, "models", "pull", "--help")
    assert helped.returncode == 0 and "--revision" in helped.stdout and "REPO" in helped.stdout
    assert not (home / "run").exists()  # argument errors never start a daemon


def test_a_client_waits_for_a_daemon_another_client_is_still_starting(home: Path) -> None:
    """Tray, hotkey and CLI may all start the daemon at login. The one that loses the race
    must wait for the winner's socket, not fail while the winner is still starting."""
    run = home / "run"
    run.mkdir(mode=0o700)
    with open(run / "hearth.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a daemon that is starting: lock taken, no socket
        chat = subprocess.Popen(
            [sys.executable, "-m", "daemon", "chat", "--no-store", "--max-tokens", "2", "hi"],
            env={**os.environ, "HEARTH_HOME": str(home)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        out = home / "logs" / "daemon.out"  # where the chat's own daemon says it gave way
        deadline = time.monotonic() + 30
        while b"already running" not in (out.read_bytes() if out.exists() else b""):
            assert time.monotonic() < deadline, "the chat started no daemon of its own"
            time.sleep(0.05)
        time.sleep(0.5)  # the old client failed at once here; this one keeps waiting
        assert chat.poll() is None, chat.communicate()
    daemon = start_daemon(home)  # the winner comes up
    try:
        out, err = chat.communicate(timeout=60)
        assert chat.returncode == 0, err
        assert out.strip()
    finally:
        daemon.stop()
