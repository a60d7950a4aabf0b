"""The seccomp filter: exactly the calls it names fail, with EPERM, in the process and its
children; everything else works. Each case runs in a fork (a filter is forever)."""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from daemon.engine.confinement import runner_env
from daemon.sandbox import seccomp

ARCH = seccomp.machine()


def _in_fork(body: Callable[[], object]) -> str:
    """Run ``body`` in a forked child; its result (or exception) as text."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read)
        try:
            text = repr(body())
        except BaseException as exc:
            text = f"{type(exc).__name__}: {exc}"
        os.write(write, text.encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        out = pipe.read().decode()
    os.waitpid(pid, 0)
    return out


@pytest.fixture(autouse=True)
def linux_machine() -> None:
    if ARCH is None:
        pytest.fail("the runner's seccomp filter needs Linux on x86-64 or arm64")


def test_no_socket_of_any_family_can_be_made_or_connected_after_deny_sockets() -> None:
    def body() -> list[str]:
        assert seccomp.deny_sockets()
        found = []
        for family in (socket.AF_UNIX, socket.AF_INET, socket.AF_INET6):
            try:
                socket.socket(family).close()
                found.append("made")
            except PermissionError as exc:
                found.append(errno.errorcode[exc.errno])
        found.append(str(bool(Path("/proc/self/status").read_text())))  # files still work
        return found

    assert _in_fork(body) == "['EPERM', 'EPERM', 'EPERM', 'True']"


def test_a_child_started_after_the_filter_has_no_sockets_either() -> None:
    def body() -> str:
        seccomp.deny_sockets()
        code = "import socket\ntry:\n socket.socket()\nexcept OSError as e: print(e.errno)"
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout

    assert _in_fork(body) == repr(f"{errno.EPERM}\n")


def test_a_call_can_be_refused_for_one_first_argument_only() -> None:
    def body() -> tuple[int, int, int]:
        assert ARCH is not None
        seccomp.install(seccomp.program(ARCH, ["unshare"], {"prctl": seccomp.PR_SET_SECCOMP}))
        libc = ctypes.CDLL(None, use_errno=True)
        dumpable = libc.prctl(3, 0, 0, 0, 0)  # PR_GET_DUMPABLE: still answered
        refused = libc.prctl(seccomp.PR_SET_SECCOMP, 2, 0, 0, 0)
        return dumpable, refused, ctypes.get_errno()

    assert _in_fork(body) == repr((1, -1, errno.EPERM))


def test_a_runner_environment_keeps_only_what_finds_python_and_the_locale() -> None:
    env = runner_env(
        {"PATH": "/usr/bin", "PYTHONPATH": "/src", "LANG": "C.UTF-8", "GGML_NTHREADS": "2",
         "DBUS_SESSION_BUS_ADDRESS": "unix:path=/run/user/1000/bus", "XDG_RUNTIME_DIR": "/run",
         "HEARTH_HOME": "/h", "http_proxy": "http://127.0.0.1:3128", "SSH_AUTH_SOCK": "/a"}
    )  # fmt: skip
    assert env == {"PATH": "/usr/bin", "PYTHONPATH": "/src", "LANG": "C.UTF-8",
                   "GGML_NTHREADS": "2", "PYTHONUNBUFFERED": "1"}  # fmt: skip
