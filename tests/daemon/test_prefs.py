"""prefs.* and the rewrite preset methods: persisted in config.toml, applied at once."""

from __future__ import annotations

import shutil
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.errors import InvalidParams, ModelNotFound
from tests.conftest import Daemon, make_home, start_daemon

HAND_WRITTEN = """# my own notes about Hearth
keep_alive = 300  # five minutes

[[presets]]
name = "pirate"
instruction = "Rewrite this text as a pirate would say it."
"""


@pytest.fixture
def prefs_daemon() -> Iterator[Daemon]:
    home = make_home(HAND_WRITTEN)
    daemon = start_daemon(home)
    yield daemon
    daemon.stop()
    shutil.rmtree(home, ignore_errors=True)


def config_text(daemon: Daemon) -> str:
    return Path(daemon.paths.config_file).read_text()


def test_prefs_get_reports_the_config_and_the_presets_sources(prefs_daemon: Daemon) -> None:
    with prefs_daemon.client() as c:
        got = c.call("prefs.get")
    assert got["prefs"] == {
        "engine": "auto",
        "default_model": "default",
        "keep_alive": 300,
        "hotkeys": {},
    }
    by_name = {p["name"]: p for p in got["presets"]}
    assert by_name["proofread"]["source"] == "builtin"
    assert by_name["pirate"] == {
        "name": "pirate",
        "instruction": "Rewrite this text as a pirate would say it.",
        "source": "user",
        "replaces_builtin": False,
        "route": "local",
    }


def test_keep_alive_change_applies_now_and_keeps_the_users_comments(
    prefs_daemon: Daemon,
) -> None:
    with prefs_daemon.client() as c:
        assert c.call("prefs.set", {"key": "keep_alive", "value": 30}) == {
            "key": "keep_alive",
            "value": 30,
        }
        assert c.call("status")["keep_alive_s"] == 30
    text = config_text(prefs_daemon)
    assert "# my own notes about Hearth" in text
    assert "keep_alive = 30  # five minutes" in text
    assert tomllib.loads(text)["keep_alive"] == 30


def test_presets_added_edited_and_removed_survive_a_daemon_restart(
    prefs_daemon: Daemon,
) -> None:
    with prefs_daemon.client() as c:
        c.call("rewrite.presets.add", {"name": "haiku", "instruction": "Make it a haiku."})
        c.call(
            "rewrite.presets.update",
            {"name": "haiku", "new_name": "short poem", "instruction": "Make it a short poem."},
        )
        c.call("rewrite.presets.remove", {"name": "pirate"})
        listed = {p["name"]: p["instruction"] for p in c.call("rewrite.presets")["presets"]}
    assert listed["short poem"] == "Make it a short poem."
    assert "pirate" not in listed and "haiku" not in listed
    prefs_daemon.stop()
    restarted = start_daemon(prefs_daemon.home)
    try:
        with restarted.client() as c:
            presets = c.call("prefs.get")["presets"]
        mine = [(p["name"], p["instruction"]) for p in presets if p["source"] == "user"]
        assert mine == [("short poem", "Make it a short poem.")]
    finally:
        restarted.stop()


def test_a_preset_routed_remote_by_hand_stays_remote_when_settings_edit_it() -> None:
    """Settings edits a preset's name and instruction only: the `route` the user wrote
    by hand is kept (losing it would be safe, but would quietly change where it runs)."""
    home = make_home(HAND_WRITTEN + 'route = "remote"\n')
    daemon = start_daemon(home)
    try:
        with daemon.client() as c:
            c.call("rewrite.presets.update", {"name": "pirate", "new_name": "buccaneer",
                                              "instruction": "Say it as a buccaneer."})  # fmt: skip
            routes = {p["name"]: p["route"] for p in c.call("rewrite.presets")["presets"]}
        assert routes["buccaneer"] == "remote" and routes["proofread"] == "local"
        assert 'route = "remote"' in config_text(daemon)
    finally:
        daemon.stop()
        shutil.rmtree(home, ignore_errors=True)


def test_hotkeys_and_engine_are_stored_for_the_tray(prefs_daemon: Daemon) -> None:
    keys = {"rewrite": "Ctrl+Alt+R", "open_chat": "", "rewrite:key-points": "Ctrl+Alt+K",
            "rewrite:short poem": "Meta+P"}  # fmt: skip
    with prefs_daemon.client() as c:
        c.call("prefs.set", {"key": "hotkeys", "value": keys})
        c.call("prefs.set", {"key": "engine", "value": "llamacpp"})
        got = c.call("prefs.get")["prefs"]
        assert c.call("status")["engine"] == "llamacpp"
    assert got["hotkeys"] == keys and got["engine"] == "llamacpp"
    stored = tomllib.loads(config_text(prefs_daemon))
    assert stored["hotkeys"] == keys and stored["engine"] == "llamacpp"


def test_bad_values_are_refused_by_field_and_nothing_is_written(prefs_daemon: Daemon) -> None:
    before = config_text(prefs_daemon)
    with prefs_daemon.client() as c:
        cases = [
            ("prefs.set", {"key": "engine", "value": "gpu"}, "value"),
            ("prefs.set", {"key": "keep_alive", "value": "soon"}, "value"),
            ("prefs.set", {"key": "colour", "value": 1}, "key"),
            ("prefs.set", {"key": "hotkeys", "value": {"Bad Name": "x"}}, "value"),
            ("prefs.set", {"key": "hotkeys", "value": {"rewrite:a/b": "x"}}, "value"),
            ("rewrite.presets.add", {"name": "proofread", "instruction": "x"}, "name"),
            ("rewrite.presets.add", {"name": "a/b", "instruction": "x"}, "name"),
            ("rewrite.presets.add", {"name": "ok", "instruction": ""}, "instruction"),
            ("rewrite.presets.remove", {"name": "concise"}, "name"),
            ("rewrite.presets.update", {"name": "nobody", "instruction": "x"}, "name"),
        ]
        for method, params, field in cases:
            with pytest.raises(InvalidParams) as err:
                c.call(method, params)
            assert err.value.data["field"] == field, (method, params)
        with pytest.raises(ModelNotFound):
            c.call("prefs.set", {"key": "default_model", "value": "no-such-model"})
        assert c.call("status")["keep_alive_s"] == 300  # still serving, unchanged
    assert config_text(prefs_daemon) == before


def test_a_config_broken_by_hand_is_reported_not_overwritten(prefs_daemon: Daemon) -> None:
    path = Path(prefs_daemon.paths.config_file)
    path.write_text("keep_alive = [oops\n")
    with prefs_daemon.client() as c, pytest.raises(InvalidParams) as err:
        c.call("prefs.set", {"key": "keep_alive", "value": 10})
    assert err.value.data["reason"] == "config_unreadable"
    assert path.read_text() == "keep_alive = [oops\n"
