"""docs/plugins.md stays true: its plugin is written from the page's own code blocks,
and the page's console session is run as shown, outputs compared."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

from .support import REPO, plugin_daemon, wait_for

DOC = (REPO / "docs" / "plugins.md").read_text()
FILES = re.findall(r"```\w+ (\S+/\S+)\n(.*?)```", DOC, re.S)
SESSION = re.search(r"```console\n(.*?)```", DOC, re.S)


def steps() -> list[tuple[str, list[str]]]:
    """(command, expected output lines) for each `$` line of the console block."""
    assert SESSION is not None
    found: list[tuple[str, list[str]]] = []
    for line in SESSION.group(1).splitlines():
        if line.startswith("$ "):
            found.append((line[2:], []))
        else:
            found[-1][1].append(line)
    return found


def test_the_tutorial_plugin_is_two_files_and_its_session_runs_as_shown(tmp_path: Path) -> None:
    assert sorted(name for name, _ in FILES) == ["notes-stats/plugin.py", "notes-stats/plugin.toml"]
    for name, text in FILES:
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text)
    with plugin_daemon() as d:
        env = {**d.env}
        outputs = {}
        for command, expected in steps():
            if command.startswith("hearth "):
                args = shlex.split(command)[1:]
                if args[:2] == ["plugins", "enable"]:
                    args.append("--yes")  # the page answers the question by hand
                    expected = [e for e in expected if not e.startswith("Grant these")]
                done = subprocess.run(
                    [sys.executable, "-m", "daemon", *args],
                    env=env,
                    cwd=tmp_path,
                    capture_output=True,
                    text=True,
                    timeout=240,
                )
            else:
                done = subprocess.run(
                    ["bash", "-c", command],
                    env=env,
                    cwd=tmp_path,
                    capture_output=True,
                    text=True,
                    timeout=30,
                )
            assert done.returncode == 0, (command, done.stderr)
            outputs[command] = done.stdout
            if expected:
                assert done.stdout.splitlines() == expected, command
        topic = outputs["hearth plugins run notes-stats topic todo.md"].strip()
        assert topic and len(topic.split()) <= 12
        info = d.info("notes-stats")
        assert [t["kind"] for t in info["triggers"]] == ["file", "every"]
        (d.user_home / "Notes" / "new.md").write_text("A fresh note")
        wait_for(lambda: "new.md was created" in d.log_text("notes-stats"), 60, "the file trigger")
