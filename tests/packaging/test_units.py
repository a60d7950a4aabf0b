"""The files in packaging/: systemd units, desktop entries, the launchd plist, the icon.

Each is checked as `hearth service install` writes it (filled in for this user),
with the platform's own validators where this machine has them.
"""

from __future__ import annotations

import os
import plistlib
import re
import shutil
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.service import Launchd, Systemd
from daemon.service.files import packaging_dir
from daemon.service.launchd import template_path

ROOT = Path(__file__).resolve().parents[2]


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} is missing: run `bash tests/system-deps.sh` first")
    return path


@pytest.fixture
def rendered() -> Iterator[dict[str, Path]]:
    """The units and desktop entries as installed for a temporary user."""
    root = Path(tempfile.mkdtemp(prefix="hu-", dir="/tmp"))
    (root / "rt").mkdir(mode=0o700)
    env = {"HOME": str(root), "XDG_RUNTIME_DIR": str(root / "rt")}
    out = {}
    for path, text in Systemd(env).files(tray=True).items():
        out[path.name] = root / "out" / path.name
        out[path.name].parent.mkdir(exist_ok=True)
        out[path.name].write_text(text)
    yield out
    shutil.rmtree(root, ignore_errors=True)


def _verify(*units: Path) -> subprocess.CompletedProcess[str]:
    runtime = units[0].parent.parent / "rt"  # --user needs a runtime dir, not a manager
    return subprocess.run(
        [_need("systemd-analyze"), "--user", "verify", *map(str, units)],
        env={**os.environ, "XDG_RUNTIME_DIR": str(runtime)},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_the_systemd_units_pass_systemd_analyze_verify_without_a_warning(
    rendered: dict[str, Path],
) -> None:
    done = _verify(rendered["hearth.socket"], rendered["hearth.service"])
    assert done.returncode == 0 and done.stdout + done.stderr == "", done.stdout + done.stderr


def test_verify_would_catch_a_mistyped_option(rendered: dict[str, Path]) -> None:
    service = rendered["hearth.service"]
    service.write_text(service.read_text().replace("RestrictNamespaces=", "RestrictNamspaces="))
    done = _verify(rendered["hearth.socket"], service)
    assert "Unknown key 'RestrictNamspaces'" in done.stderr


def test_every_hardening_option_says_why(rendered: dict[str, Path]) -> None:
    lines = rendered["hearth.service"].read_text().split("\n[Install]")[0].splitlines()
    start = next(i for i, line in enumerate(lines) if "--- Hardening" in line)
    block_commented = False
    for line in lines[start + 1 :]:
        if line.startswith("#"):
            block_commented = True
        elif "=" in line:
            assert block_commented, f"no comment says why: {line}"
        else:
            block_commented = False


def test_the_service_keeps_what_hearth_needs_and_refuses_the_rest(
    rendered: dict[str, Path],
) -> None:
    options = dict(
        line.split("=", 1)
        for line in rendered["hearth.service"].read_text().splitlines()
        if re.match(r"^[A-Z]\w+=", line)
    )
    assert options["Type"] == "notify"
    assert options["ProtectSystem"] == "strict"
    assert set(options["RestrictNamespaces"].split()) == {"user", "net"}  # the runners' sandbox
    assert "PrivateNetwork" not in options  # the gateway's allowed calls
    assert "PrivateTmp" not in options  # `hearth models import /tmp/x.gguf`
    assert "MemoryDenyWriteExecute" not in options  # ctypes callbacks, MLX's compiler
    assert {"AF_UNIX", "AF_INET", "AF_INET6"} <= set(options["RestrictAddressFamilies"].split())
    socket_unit = rendered["hearth.socket"].read_text()
    assert "ListenStream=%t/hearth/hearth.sock" in socket_unit  # what the daemon expects
    assert "SocketMode=0600" in socket_unit and "DirectoryMode=0700" in socket_unit


def test_the_desktop_entries_pass_desktop_file_validate(rendered: dict[str, Path]) -> None:
    for name in ("hearth.desktop", "hearth-tray.desktop"):
        done = subprocess.run(
            [_need("desktop-file-validate"), str(rendered[name])], capture_output=True, text=True
        )
        assert done.returncode == 0 and done.stdout == "", f"{name}: {done.stdout}"
        assert "Icon=hearth" in rendered[name].read_text()
    assert "X-GNOME-Autostart-enabled=true" in rendered["hearth-tray.desktop"].read_text()


def test_the_icon_is_a_square_svg(rendered: dict[str, Path]) -> None:
    svg = ET.parse(rendered["hearth.svg"]).getroot()
    assert svg.tag == "{http://www.w3.org/2000/svg}svg"
    assert svg.get("viewBox") == "0 0 128 128"


# launchd.plist(5): the keys our agent uses, and their types.
PLIST_SCHEMA: dict[str, type] = {
    "Label": str,
    "ProgramArguments": list,
    "Sockets": dict,
    "EnvironmentVariables": dict,
    "KeepAlive": bool,
    "ProcessType": str,
    "StandardErrorPath": str,
}
SOCKET_SCHEMA: dict[str, type] = {
    "SockPathName": str,
    "SockPathMode": int,
    "SockType": str,
    "SockFamily": str,
}


def _check_agent(agent: dict[str, object]) -> None:
    assert set(agent) <= set(PLIST_SCHEMA), set(agent) - set(PLIST_SCHEMA)
    for key, kind in PLIST_SCHEMA.items():
        assert isinstance(agent[key], kind), key
    args = agent["ProgramArguments"]
    assert isinstance(args, list) and all(isinstance(a, str) for a in args)
    assert agent["ProcessType"] in ("Background", "Standard", "Adaptive", "Interactive")
    sockets = agent["Sockets"]
    assert isinstance(sockets, dict) and list(sockets) == ["Listeners"]
    listener = sockets["Listeners"]
    assert set(listener) == set(SOCKET_SCHEMA)
    for key, kind in SOCKET_SCHEMA.items():
        assert isinstance(listener[key], kind), key
    assert listener["SockPathMode"] == 0o600
    assert (listener["SockType"], listener["SockFamily"]) == ("stream", "Unix")
    assert str(listener["SockPathName"]).startswith("/")
    env = agent["EnvironmentVariables"]
    assert isinstance(env, dict) and env["HEARTH_LAUNCHD_SOCKET"] == "Listeners"


def test_the_launchd_plist_is_valid(tmp_path: Path) -> None:
    installed = Launchd({"HOME": str(tmp_path)}).agent()
    written = tmp_path / "agent.plist"
    written.write_bytes(plistlib.dumps(installed))
    plutil = shutil.which("plutil")
    for path in (template_path(), written):
        if plutil:  # macOS
            done = subprocess.run([plutil, "-lint", str(path)], capture_output=True, text=True)
            assert done.returncode == 0, done.stdout
        with open(path, "rb") as fh:
            _check_agent(plistlib.load(fh))
    paths = Launchd({"HOME": str(tmp_path)}).paths
    assert installed["Sockets"]["Listeners"]["SockPathName"] == str(paths.socket)
    assert installed["EnvironmentVariables"]["TMPDIR"] == str(paths.run.parent)


def test_the_templates_found_are_the_repository_s_packaging_folder() -> None:
    assert packaging_dir() == ROOT / "packaging"
