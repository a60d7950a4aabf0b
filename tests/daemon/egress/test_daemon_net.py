"""`hearth net` and `hearth audit list` as a user runs them: the policy they set is the one
the daemon enforces, persists across restarts, and the log can be filtered."""

from __future__ import annotations

import json
import os
import shutil
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.cli.audit import parse_since
from daemon.errors import EgressDenied, EgressFailed
from tests.conftest import make_home

from .daemon_support import Running, hearth, launch

PULL = {"repo": "hearth-test/none", "file": "x.gguf", "endpoint": "http://127.0.0.1:9"}


@pytest.fixture
def running() -> Iterator[Running]:
    home = make_home()
    daemon = launch(home)
    yield daemon
    daemon.stop()
    shutil.rmtree(home, ignore_errors=True)


def test_the_network_is_offline_until_the_user_says_otherwise(running: Running) -> None:
    out = hearth(running.home, "net", "status")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == "network  offline (nothing may leave this machine)"
    assert "rules    (none)" in out.stdout and "blocked  0 attempt(s)" in out.stdout
    # No keychain here (the tests' default): the status says what that means.
    assert "secrets  no keychain: " in out.stdout and "not confidential" in out.stdout
    audit = json.loads(hearth(running.home, "net", "status", "--json").stdout)["audit"]
    assert (audit["secrets"], audit["secrets_confidential"]) == ("file", False)


def test_a_rule_set_from_the_cli_persists_and_is_enforced_after_a_restart(
    running: Running,
) -> None:
    allow = hearth(running.home, "net", "allow", "127.0.0.1", "--for", "models.pull")
    assert allow.returncode == 0 and "Hearth is offline" in allow.stderr  # rules wait for a mode
    assert hearth(running.home, "net", "mode", "allow-listed").returncode == 0
    running.stop()
    settings = running.paths.config / "network.json"
    assert stat.S_IMODE(os.stat(settings).st_mode) == 0o600
    again = launch(running.home)
    try:
        status = json.loads(hearth(running.home, "net", "status", "--json").stdout)
        assert status["mode"] == "allow-listed"
        assert status["rules"] == [{"host": "127.0.0.1", "caller": "models.pull"}]
        again.call("net.allow", {"host": "127.0.0.1", "caller": "models.pull"})  # idempotent
        with pytest.raises(EgressFailed, match=r"could not reach 127\.0\.0\.1"):
            again.call("models.pull", PULL)  # allowed: it went out (and found no hub)
        assert hearth(running.home, "net", "offline").returncode == 0
        with pytest.raises(EgressDenied, match="Hearth is offline"):
            again.call("models.pull", PULL)
        revoke = hearth(running.home, "net", "revoke", "127.0.0.1", "--for", "models.pull")
        assert revoke.returncode == 0 and "rules    (none)" in revoke.stdout
        assert hearth(running.home, "net", "revoke", "127.0.0.1").returncode == 1
    finally:
        again.stop()


def test_audit_list_filters_by_caller_and_time(running: Running) -> None:
    with pytest.raises(EgressDenied, match="offline"):
        running.call("models.pull", PULL)
    table = hearth(running.home, "audit", "list")
    assert table.returncode == 0
    head, intent, outcome = table.stdout.splitlines()
    assert head.split() == ["SEQ", "TIME", "CALLER", "PHASE", "CALL", "RESULT"]
    assert "models.pull" in intent and "DENIED" in intent
    assert "http://127.0.0.1:9/hearth-test/none/resolve/main/x.gguf" in intent
    assert "EgressDenied" in outcome
    recent = hearth(running.home, "audit", "list", "--since", "10m", "--json")
    assert len(json.loads(recent.stdout)) == 2
    later = hearth(running.home, "audit", "list", "--since", "2999-01-01")
    assert later.stdout.strip() == "no entries"
    other = hearth(running.home, "audit", "list", "--caller", "remote.chat", "--json")
    assert json.loads(other.stdout) == []


@pytest.mark.parametrize(
    ("text", "ago"), [("30s", 30), ("10m", 600), ("2h", 7200), ("7d", 7 * 86400)]
)
def test_since_takes_durations_ago(text: str, ago: float) -> None:
    assert abs(parse_since(text) - (time.time() - ago)) < 5


def test_since_takes_dates_and_epoch_seconds() -> None:
    assert parse_since("1700000000") == 1700000000
    assert parse_since("2025-01-31T09:00:00+00:00") == 1738314000


def test_since_refuses_what_is_not_a_time(tmp_path: Path) -> None:
    out = hearth(tmp_path, "audit", "list", "--since", "yesterday-ish")
    assert out.returncode == 2 and "is not a time" in out.stderr


def test_every_change_of_the_network_settings_is_in_the_audit_log(running: Running) -> None:
    assert hearth(running.home, "net", "mode", "allow-listed").returncode == 0
    assert hearth(running.home, "net", "allow", "127.0.0.1", "--for", "remote.chat").returncode == 0
    running.call("net.remote", {"url": "http://127.0.0.1:9/v1", "model": "m", "api_key": "k"})
    assert hearth(running.home, "net", "offline").returncode == 0
    policy = [(e["caller"], e["change"]) for e in running.call("audit.list")["entries"]]
    assert policy == [
        ("net.set_mode", "mode offline -> allow-listed"),
        ("net.allow", "allow 127.0.0.1 for remote.chat"),
        ("net.remote", "remote server http://127.0.0.1:9/v1 (model m)"),
        ("net.remote", "remote API key set"),
        ("net.set_mode", "mode allow-listed -> offline"),
    ]
    assert "k" not in {e["change"].split()[-1] for e in running.call("audit.list")["entries"]}


def _edited_behind_the_daemons_back(running: Running, edit: str) -> dict[str, object]:
    assert hearth(running.home, "net", "allow", "127.0.0.1", "--for", "models.pull").returncode == 0
    assert hearth(running.home, "net", "mode", "allow-listed").returncode == 0
    settings = running.paths.config / "network.json"
    allowed = settings.read_bytes()
    assert hearth(running.home, "net", "offline").returncode == 0  # what the user wants now
    running.stop()
    if edit == "rule added":
        data = json.loads(settings.read_bytes())
        data["rules"].append({"host": "*.evil.example", "caller": "*"})
        settings.write_text(json.dumps(data))
    else:  # the genuine file of a moment ago, put back
        settings.write_bytes(allowed)
    again = launch(running.home)
    try:
        return dict(again.call("net.status"))
    finally:
        again.stop()


@pytest.mark.parametrize("edit", ["rule added", "old copy"])
def test_a_network_json_changed_behind_the_daemons_back_is_not_used(
    running: Running, edit: str
) -> None:
    status = _edited_behind_the_daemons_back(running, edit)
    assert (status["mode"], status["rules"], status["remote"]) == ("offline", [], None)
    assert "was changed outside Hearth" in str(status["settings_problem"])
