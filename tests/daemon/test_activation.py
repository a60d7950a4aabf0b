"""Socket activation: the real daemon under systemd-socket-activate (Debian's systemd).

systemd-socket-activate binds the socket, waits for the first connection, then execs
the daemon with LISTEN_FDS/LISTEN_PID, as a systemd socket unit does. It cannot set a
socket's mode (it always makes 0644), so the tests set 0600 themselves, as the unit's
SocketMode=0600 does; one test leaves 0644 to see it refused.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from daemon.activation import inherited_socket, sd_notify
from daemon.client import Client
from daemon.paths import Paths
from tests.conftest import make_home

DEADLINE = 120.0  # generous: two cores shared by several engineers


def _tool() -> str:
    path = shutil.which("systemd-socket-activate")
    if path is None:
        pytest.fail("systemd-socket-activate is missing: run `bash tests/system-deps.sh` first")
    return path


@dataclass
class Activated:
    home: Path
    proc: subprocess.Popen[bytes]
    notify: socket.socket
    stderr: Path

    @property
    def paths(self) -> Paths:
        return Paths.from_env({"HEARTH_HOME": str(self.home)})

    def comm(self) -> str:
        return Path(f"/proc/{self.proc.pid}/comm").read_text().strip()

    def output(self) -> str:
        return self.stderr.read_text(errors="replace")

    def wait_for_listening(self) -> None:
        deadline = time.monotonic() + DEADLINE
        while "Listening on" not in self.output():
            assert self.proc.poll() is None, self.output()
            assert time.monotonic() < deadline, "systemd-socket-activate did not listen"
            time.sleep(0.02)

    def messages(self, timeout: float) -> list[str]:
        """Every sd_notify datagram that arrives within ``timeout`` seconds."""
        got: list[str] = []
        self.notify.settimeout(timeout)
        try:
            while True:
                got.append(self.notify.recv(4096).decode())
                self.notify.settimeout(0.2)
        except TimeoutError:
            return got

    def exit_code(self) -> int:
        return self.proc.wait(DEADLINE)


Start = Callable[..., Activated]


@pytest.fixture
def activate() -> Iterator[Start]:
    started: list[Activated] = []

    def start(*listen: str, home: Path | None = None) -> Activated:
        home = home or make_home()
        Paths.from_env({"HEARTH_HOME": str(home)}).ensure()
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(str(home / "notify.sock"))
        stderr = home / "activate.err"
        env = {**os.environ, "HEARTH_HOME": str(home), "NOTIFY_SOCKET": str(home / "notify.sock")}
        # It hands the daemon only PATH, HOME, TERM, USER and what -E names.
        passed = [arg for name in env for arg in ("-E", name)]
        with open(stderr, "wb") as err:
            proc = subprocess.Popen(
                [_tool(), *listen, *passed, sys.executable, "-m", "daemon", "daemon"],
                env=env, stdin=subprocess.DEVNULL, stdout=err, stderr=err, cwd=home,
            )  # fmt: skip
        run = Activated(home, proc, notify, stderr)
        started.append(run)
        run.wait_for_listening()
        return run

    yield start
    for run in started:
        if run.proc.poll() is None:
            run.proc.send_signal(signal.SIGTERM)
            try:
                run.proc.wait(30)
            except subprocess.TimeoutExpired:
                run.proc.kill()
                run.proc.wait()
        run.notify.close()
        shutil.rmtree(run.home, ignore_errors=True)


def test_the_first_connection_starts_the_daemon_which_serves_a_chat_and_says_ready(
    activate: Start,
) -> None:
    home = make_home()
    sock_path = home / "run" / "hearth.sock"
    run = activate("-l", str(sock_path), home=home)
    os.chmod(sock_path, 0o600)  # what the unit's SocketMode=0600 does
    time.sleep(0.5)
    assert run.comm().startswith("systemd-socket"), "started before any client came"
    assert not (run.paths.logs / "daemon.log").exists()

    with Client.connect(sock_path, "activation-test") as client:
        assert client.server["server"] == "hearth"
        assert run.comm().startswith("python"), "the connection did not start the daemon"
        status = client.call("status")
        assert status["pid"] == run.proc.pid  # LISTEN_PID: the daemon is the exec'd process
        result = client.call(
            "chat",
            {
                "messages": [{"role": "user", "content": "Say hello."}],
                "options": {"temperature": 0, "max_tokens": 8},
                "store": False,
            },
        )
        assert result["text"].strip()
        assert result["tokens"]["completion"] >= 1

    ready = [m for m in run.messages(DEADLINE) if "READY=1" in m]
    assert ready and f"STATUS=serving on {sock_path}" in ready[0]
    log = (run.paths.logs / "daemon.log").read_text()
    assert "passed by the service manager" in log

    run.proc.send_signal(signal.SIGTERM)
    assert run.exit_code() == 0
    assert any("STOPPING=1" in m for m in run.messages(5))
    assert sock_path.is_socket(), "the daemon removed the socket the manager owns"


def _trigger_stream(address: str | tuple[str, int]) -> None:
    family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(DEADLINE)
        s.connect(address)
        with contextlib.suppress(OSError):
            s.recv(1)  # EOF (or a reset) when the refused daemon exits


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _refused(run: Activated, expected: str) -> None:
    assert run.exit_code() == 1
    out = run.output()
    assert f"hearth: {expected}" in out, out  # on stderr: the journal under systemd
    assert expected in (run.paths.logs / "daemon.log").read_text()
    assert not any("READY=1" in m for m in run.messages(0.5))


def test_a_tcp_socket_is_refused_with_a_clear_line(activate: Start) -> None:
    port = _free_port()
    run = activate("-l", f"127.0.0.1:{port}")
    _trigger_stream(("127.0.0.1", port))
    _refused(
        run, f"refusing the inherited socket: it is a TCP/IP socket (AF_INET, 127.0.0.1:{port})"
    )


def test_a_unix_socket_at_another_path_is_refused(activate: Start) -> None:
    home = make_home()
    other = home / "other.sock"
    run = activate("-l", str(other), home=home)
    os.chmod(other, 0o600)
    _trigger_stream(str(other))
    expected = home / "run" / "hearth.sock"
    _refused(run, f"refusing the inherited socket: it is bound at {other}, expected {expected}")


def test_a_socket_others_could_reach_is_refused(activate: Start) -> None:
    home = make_home()
    sock_path = home / "run" / "hearth.sock"
    run = activate("-l", str(sock_path), home=home)
    _trigger_stream(str(sock_path))  # left at systemd-socket-activate's 0644
    _refused(run, f"refusing the inherited socket: {sock_path} has mode 0644, expected 0600")


def test_a_datagram_socket_at_the_right_path_is_refused(activate: Start) -> None:
    home = make_home()
    sock_path = home / "run" / "hearth.sock"
    run = activate("--datagram", "-l", str(sock_path), home=home)
    os.chmod(sock_path, 0o600)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.sendto(b"hi", str(sock_path))
    _refused(run, f"refusing the inherited socket at {sock_path}: it is SOCK_DGRAM")


def test_two_inherited_sockets_are_refused(activate: Start) -> None:
    home = make_home()
    sock_path = home / "run" / "hearth.sock"
    run = activate("-l", str(sock_path), "-l", str(home / "b.sock"), home=home)
    os.chmod(sock_path, 0o600)
    _trigger_stream(str(sock_path))
    _refused(run, "expected one inherited socket, got LISTEN_FDS=2")


def test_sd_notify_reaches_an_abstract_socket_and_is_quiet_without_one() -> None:
    name = f"hearth-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind("\0" + name)
        listener.settimeout(10)
        assert sd_notify("READY=1", {"NOTIFY_SOCKET": "@" + name})
        assert listener.recv(100) == b"READY=1"
    assert not sd_notify("READY=1", {})
    assert not sd_notify("READY=1", {"NOTIFY_SOCKET": "relative/path"})


def test_listen_variables_meant_for_another_process_are_ignored_and_cleared() -> None:
    env = {"LISTEN_PID": str(os.getpid() + 1), "LISTEN_FDS": "1", "LISTEN_FDNAMES": "x"}
    assert inherited_socket(Path("/nonexistent/hearth.sock"), env) is None
    assert env == {}  # the runners (our children) never see them


def test_an_inherited_fd_that_is_not_a_socket_is_refused() -> None:
    home = make_home()
    try:
        # The shell opens a plain file as fd 3, then becomes the daemon (same pid).
        script = f'exec 3<>"{home}/not-a-socket"; export LISTEN_PID=$$ LISTEN_FDS=1; exec "$@"'
        done = subprocess.run(
            ["sh", "-c", script, "sh", sys.executable, "-m", "daemon", "daemon"],
            env={**os.environ, "HEARTH_HOME": str(home)}, cwd=home,
            capture_output=True, text=True, timeout=DEADLINE,
        )  # fmt: skip
        assert done.returncode == 1
        assert "hearth: refusing the inherited fd 3: it is not a socket" in done.stderr
    finally:
        shutil.rmtree(home, ignore_errors=True)
