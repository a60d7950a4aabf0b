"""What a new user sees when something is wrong: one readable line, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from daemon.client import Client
from daemon.errors import InvalidParams
from tests.conftest import make_home

NOBODY = 65534


def hearth(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "daemon", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def home_env(home: Path) -> dict[str, str]:
    return {**os.environ, "HEARTH_HOME": str(home)}


def one_line(stderr: str) -> str:
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def test_a_runtime_dir_squatted_by_another_user_is_one_line_saying_what_to_do(
    tmp_path: Path,
) -> None:
    squat = tmp_path / f"hearth-{os.getuid()}"
    squat.mkdir()
    os.chmod(squat, 0o777)
    os.chown(squat, NOBODY, NOBODY)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "HEARTH_"))}
    env.update(TMPDIR=str(tmp_path), HOME=str(tmp_path / "home"))
    result = hearth("up", env=env)
    assert result.returncode != 0
    line = one_line(result.stderr)
    assert str(squat) in line
    assert "another user" in line and "XDG_RUNTIME_DIR" in line
    assert not (squat / "hearth.sock").exists()


def test_a_config_with_a_wrong_type_is_reported_by_hearth_up_itself() -> None:
    home = make_home('keep_alive = "soon"\n')
    result = hearth("up", env=home_env(home))
    assert result.returncode == 2
    line = one_line(result.stderr)
    assert "keep_alive must be a number of seconds, not 'soon'" in line
    assert "config.toml" in line
    assert not (home / "run" / "hearth.sock").exists()  # nothing was started


def test_a_config_syntax_error_is_reported_with_its_place() -> None:
    home = make_home("keep_alive = \n")
    result = hearth("up", env=home_env(home))
    assert result.returncode == 2
    line = one_line(result.stderr)
    assert "config.toml" in line and "line 1" in line


def test_why_the_daemon_exited_at_start_is_relayed_not_left_in_a_log() -> None:
    home = make_home()
    (home / "run").mkdir(mode=0o700)
    (home / "run" / "hearth.sock").write_text("not a socket")
    result = hearth("up", env=home_env(home))
    assert result.returncode == 2
    line = one_line(result.stderr)
    assert "is not a socket" in line and "daemon.out" not in line


def test_an_empty_chat_message_is_refused_before_anything_starts() -> None:
    home = make_home()
    for empty in ("", "   "):
        result = hearth("chat", empty, env=home_env(home))
        assert result.returncode == 2
        assert "empty" in one_line(result.stderr)
    assert not (home / "run" / "hearth.sock").exists()


def test_the_daemon_refuses_an_empty_last_user_message(client: Client) -> None:
    try:
        client.call("chat", {"messages": [{"role": "user", "content": " \n\t"}], "store": False})
    except InvalidParams as exc:
        assert exc.data["field"] == "messages[0]"
    else:
        raise AssertionError("an empty message was answered")


def test_a_preset_with_an_empty_instruction_is_refused_naming_its_line() -> None:
    home = make_home(
        'engine = "auto"\n\n[[presets]]\nname = "pirate"\ninstruction = "Talk like a pirate."\n'
        '\n[[presets]]\nname = "blank"\ninstruction = "  "\n'
    )
    result = hearth("up", env=home_env(home))
    assert result.returncode == 2
    line = one_line(result.stderr)
    assert "config.toml:7" in line and "'blank'" in line and "non-empty instruction" in line


def test_rewrite_list_marks_the_users_own_presets() -> None:
    home = make_home(
        '[[presets]]\nname = "proofread"\ninstruction = "Fix typos only."\n'
        '[[presets]]\nname = "pirate"\ninstruction = "Talk like a pirate."\n'
        '[[presets]]\nname = "polish"\ninstruction = "Polish it."\nroute = "remote"\n'
    )
    try:
        result = hearth("rewrite", "--list", env=home_env(home))
        assert result.returncode == 0, result.stderr
        lines = {ln.split()[0]: ln for ln in result.stdout.splitlines()}
        assert "(yours, replaces the built-in) Fix typos only." in lines["proofread"]
        assert "(yours) Talk like a pirate." in lines["pirate"]
        assert "(yours) (remote model) Polish it." in lines["polish"]
        assert "(yours" not in lines["concise"]
    finally:
        hearth("down", env=home_env(home))
