"""The plugin host with the real daemon: triggers, storage, notifications, refusals,
the tray's view (plugins.list, plugins.hotkey, plugins.watch), install and remove."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.client import Client
from daemon.errors import NotFound, PermissionDenied

from .support import TEST_PLUGINS, PluginDaemon, plugin_daemon, wait_for


@pytest.fixture(scope="module")
def daemon() -> Iterator[PluginDaemon]:
    with plugin_daemon() as d:
        (d.user_home / "inbox").mkdir()
        d.install(TEST_PLUGINS / "probe")
        yield d


def lines(d: PluginDaemon, name: str) -> list[str]:
    path = d.paths.data / "plugins" / "probe" / name
    return path.read_text().splitlines() if path.exists() else []


def test_a_bulk_copy_gives_one_call_per_file_not_an_event_storm(daemon: PluginDaemon) -> None:
    inbox = daemon.user_home / "inbox"
    for i in range(40):  # each file written in five pieces: many events per file
        with open(inbox / f"f{i:02}.txt", "w") as fh:
            for _ in range(5):
                fh.write("x" * 1000)
                fh.flush()
    (inbox / "ignored.dat").write_text("not a .txt")
    try:
        wait_for(lambda: len(lines(daemon, "seen.txt")) >= 40, 120, "40 file calls")
    except AssertionError:
        raise AssertionError(
            f"{lines(daemon, 'seen.txt')}\n{daemon.info('probe')}\n{daemon.log_text('probe')}"
        ) from None
    time.sleep(2)  # a storm would still be arriving
    seen = lines(daemon, "seen.txt")
    assert sorted(seen) == [f"created f{i:02}.txt" for i in range(40)]


def test_an_interval_trigger_fires_repeatedly(daemon: PluginDaemon) -> None:
    start = len(lines(daemon, "ticks.txt"))
    wait_for(lambda: len(lines(daemon, "ticks.txt")) >= start + 2, 60, "two ticks")
    assert set(lines(daemon, "ticks.txt")) == {"every"}


def test_the_tray_sees_commands_hotkeys_and_can_press_one(daemon: PluginDaemon) -> None:
    probe = next(p for p in daemon.call("plugins.list")["plugins"] if p["id"] == "probe")
    assert {c["name"] for c in probe["commands"]} == {
        "remember",
        "recall",
        "shout",
        "think",
        "clip",
    }
    assert probe["hotkeys"] == [{"keys": "ctrl+alt+p", "description": "Say hot"}]
    assert daemon.call("plugins.hotkey", {"id": "probe", "keys": "Ctrl+Alt+P"}) == {"result": "hot"}


def test_notifications_stream_to_a_watching_client(daemon: PluginDaemon) -> None:
    with Client.connect(daemon.paths.socket, "tray") as tray:
        rid = tray.send("plugins.watch", {})
        wait_for(lambda: daemon.info("probe")["state"] == "running", 30, "probe")
        time.sleep(0.2)  # the watch is registered before the shout
        assert daemon.hearth("plugins", "run", "probe", "shout", "hello tray").returncode == 0
        got: list[dict[str, object]] = []

        def on_note(method: str, params: dict[str, object]) -> None:
            got.append({"method": method, **params})
            tray.cancel(rid)

        result = tray.wait(rid, on_note)
    assert got[0]["method"] == "plugins.notification"
    assert (got[0]["plugin"], got[0]["title"], got[0]["text"]) == ("probe", "Probe", "hello tray")
    assert result == {"sent": 1}
    assert "shouted hello tray" in daemon.log_text("probe")


def test_storage_is_kept_encrypted_in_the_vault_across_restarts(daemon: PluginDaemon) -> None:
    out = daemon.hearth("plugins", "run", "probe", "remember", "colour", "ultramarine-42")
    assert out.returncode == 0 and '"colour"' in out.stdout
    assert daemon.hearth("plugins", "run", "probe", "recall", "colour").stdout.strip() == (
        '{\n  "value": "ultramarine-42"\n}'
    )
    for path in daemon.root.rglob("*"):
        if path.is_file():
            assert b"ultramarine-42" not in path.read_bytes(), path
            assert b"shouted hello" not in path.read_bytes(), path  # logs are in the vault too


def test_using_a_permission_it_was_not_granted_raises_permission_denied(
    daemon: PluginDaemon,
) -> None:
    out = daemon.hearth("plugins", "run", "probe", "think")
    assert out.returncode == 3
    assert "probe may not use model.generate: it has no 'model' permission" in out.stderr
    caught = daemon.hearth("plugins", "run", "probe", "clip")
    assert caught.stdout.strip() == "refused: permission_denied"


def test_commands_of_a_disabled_or_unknown_plugin_are_refused(daemon: PluginDaemon) -> None:
    with pytest.raises(PermissionDenied, match="not enabled: run `hearth plugins enable"):
        daemon.call("plugins.run", {"id": "daily-digest", "command": "digest"})
    with pytest.raises(NotFound):
        daemon.call("plugins.run", {"id": "nope", "command": "x"})
    out = daemon.hearth("plugins", "run", "probe", "nope")
    assert out.returncode == 2 and "no command 'nope' in this plugin" in out.stderr


def test_enable_asks_and_refuses_without_a_terminal(daemon: PluginDaemon) -> None:
    out = daemon.hearth("plugins", "enable", "daily-digest")
    assert out.returncode == 2 and "pass --yes" in out.stderr
    assert "model: ask the local model" in out.stdout
    assert daemon.info("daily-digest")["enabled"] is False


def test_a_removed_plugin_leaves_no_data_behind(daemon: PluginDaemon, tmp_path: Path) -> None:
    folder = tmp_path / "keeper"
    folder.mkdir()
    (folder / "plugin.toml").write_text('id = "keeper"\n')
    (folder / "plugin.py").write_text(
        "from plugins.sdk import Plugin\nplugin = Plugin()\n\n@plugin.command('keep')\n"
        "def keep(ctx):\n    ctx.storage['k'] = 1\n    (ctx.data_dir / 'f').write_text('x')\n"
        "    return 'kept'\n"
    )
    daemon.install(folder)
    assert daemon.hearth("plugins", "run", "keeper", "keep").stdout.strip() == "kept"
    out = daemon.hearth("plugins", "rm", "keeper")
    assert out.returncode == 0 and "removed keeper (and 1 stored key(s))" in out.stdout
    assert not (daemon.paths.config / "plugins" / "keeper").exists()
    assert not (daemon.paths.data / "plugins" / "keeper").exists()
    refused = daemon.hearth("plugins", "rm", "daily-digest")
    assert refused.returncode == 2 and "first-party plugin" in refused.stderr


def test_a_broken_plugin_is_listed_with_its_problem(daemon: PluginDaemon, tmp_path: Path) -> None:
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "plugin.toml").write_text('id = "Broken Plugin"\n')
    (folder / "plugin.py").write_text("")
    out = daemon.hearth("plugins", "install", str(folder))
    assert out.returncode == 2 and "plugin.toml: id must be" in out.stderr
