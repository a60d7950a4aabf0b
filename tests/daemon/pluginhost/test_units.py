"""The plugin host's pure logic: manifests, permissions, cron, debouncing, the SDK."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from watchdog.events import FileCreatedEvent, FileModifiedEvent, FileOpenedEvent

from daemon.errors import InvalidParams
from daemon.pluginhost import sandbox
from daemon.pluginhost.cron import Cron
from daemon.pluginhost.manifest import Permissions, expand, parse_manifest
from daemon.pluginhost.triggers import Debounced
from plugins.sdk import Plugin
from plugins.sdk.plugin import parse_interval


def manifest(tmp_path: Path, **raw: Any) -> Any:
    (tmp_path / "plugin.py").write_text("")
    return parse_manifest({"id": "x", **raw}, tmp_path)


def test_nothing_is_granted_by_default(tmp_path: Path) -> None:
    m = manifest(tmp_path)
    assert m.permissions == Permissions()
    assert m.permissions.describe() == ["(none: it runs with no access to anything)"]


def test_the_issue_manifest_parses(tmp_path: Path) -> None:
    m = manifest(
        tmp_path,
        permissions={
            "model": True,
            "network": [],
            "files": {"read": ["~/Notes"], "write": ["~/Notes"]},
            "clipboard": False,
            "notify": True,
        },
    )
    assert m.permissions.files_read == ("~/Notes",) and m.permissions.model
    assert expand("~/Notes", Path("/home/u")) == Path("/home/u/Notes")


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"id": "Bad Id"}, "id"),
        ({"entry": "../x.py"}, "entry"),
        ({"permissions": {"files": {"read": ["Notes"]}}}, "permissions.files.read"),
        ({"permissions": {"files": {"read": ["~/../etc"]}}}, "permissions.files.read"),
        ({"permissions": {"network": ["not a host!"]}}, "permissions.network"),
        ({"permissions": {"model": "yes"}}, "permissions.model"),
        ({"permissions": {"root": True}}, "permissions"),
        ({"limits": {"memory_mb": 1}}, "limits.memory_mb"),
        ({"colour": "red"}, "plugin.toml"),
    ],
)
def test_a_bad_manifest_is_refused_naming_the_field(
    tmp_path: Path, raw: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidParams) as caught:
        manifest(tmp_path, **raw)
    assert caught.value.data["field"] == field


def test_a_grant_covers_only_what_it_lists() -> None:
    granted = Permissions(model=True, network=("a.example",), files_read=("~/A",))
    assert granted.covers(Permissions(model=True, files_read=("~/A",)))
    assert not granted.covers(Permissions(network=("b.example",)))
    assert not granted.covers(Permissions(files_write=("~/A",)))
    assert not granted.covers(Permissions(clipboard=True))


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("0 9 * * 1-5", "2026-12-05 10:00", "2026-12-07 09:00"),  # Saturday → Monday
        ("*/15 * * * *", "2026-12-01 10:07", "2026-12-01 10:15"),
        ("30 18 1 * *", "2026-12-01 18:30", "2027-01-01 18:30"),
        ("0 0 29 feb *", "2026-03-01 00:00", "2028-02-29 00:00"),
        ("0 12 1 * sun", "2026-12-01 13:00", "2026-12-06 12:00"),  # day OR weekday
        ("0 0 * * 7", "2026-12-01 00:00", "2026-12-06 00:00"),  # 7 is Sunday too
    ],
)
def test_cron_finds_the_next_matching_minute(expression: str, after: str, expected: str) -> None:
    fmt = "%Y-%m-%d %H:%M"
    assert Cron.parse(expression).next_after(datetime.strptime(after, fmt)) == (
        datetime.strptime(expected, fmt)
    )


@pytest.mark.parametrize("expression", ["* * * *", "60 * * * *", "a * * * *", "0 0 31 2 *"])
def test_a_bad_cron_expression_is_refused(expression: str) -> None:
    with pytest.raises(ValueError, match=r"cron|never"):
        Cron.parse(expression).next_after(datetime(2026, 1, 1))


def test_events_are_debounced_per_file_and_filtered_by_pattern() -> None:
    fired: list[tuple[str, Any]] = []

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        handler = Debounced(loop, "h", ["*.md"], 0.2, lambda h, e: fired.append((h, e)))
        for _ in range(50):  # a save storm
            handler.on_any_event(FileModifiedEvent("/n/a.md"))
        handler.on_any_event(FileCreatedEvent("/n/b.md"))
        handler.on_any_event(FileModifiedEvent("/n/b.md"))
        handler.on_any_event(FileCreatedEvent("/n/c.png"))
        handler.on_any_event(FileOpenedEvent("/n/d.md"))
        await asyncio.sleep(0.05)
        assert fired == []  # not quiet yet
        await asyncio.sleep(0.5)
        assert handler.events == 52

    asyncio.run(scenario())
    assert sorted(fired, key=lambda f: f[1]["path"]) == [
        ("h", {"kind": "modified", "path": "/n/a.md"}),
        ("h", {"kind": "created", "path": "/n/b.md"}),
    ]


def test_the_sdk_records_commands_and_triggers() -> None:
    plugin = Plugin()

    @plugin.command("go")
    def go(ctx: Any) -> str:
        """Go somewhere."""
        return "went"

    @plugin.every("90m")
    def often(ctx: Any) -> None: ...

    @plugin.cron("0 9 * * 1-5")
    def mornings(ctx: Any) -> None: ...

    described = plugin.describe()
    assert described["commands"] == [{"name": "go", "description": "Go somewhere."}]
    assert described["triggers"] == [
        {"handler": "often", "kind": "every", "seconds": 5400.0},
        {"handler": "mornings", "kind": "cron", "expression": "0 9 * * 1-5"},
    ]
    with pytest.raises(ValueError, match="declared twice"):
        plugin.command("go")(go)
    with pytest.raises(ValueError, match="interval"):
        parse_interval("soon")


def test_the_macos_profile_denies_by_default_and_allows_only_the_plan() -> None:
    spec = sandbox.plan(
        folder=Path("/p/x"),
        data_dir=Path("/d/x"),
        read=[Path('/h/"odd"')],
        write=[Path("/h/out")],
        limits={},
        cgroup=False,
        disable=[],
    )
    profile = sandbox.macos_profile(spec, "/usr/bin/python3")
    lines = profile.splitlines()
    assert lines[:2] == ["(version 1)", "(deny default)"]
    assert '(allow process-exec (literal "/usr/bin/python3"))' in lines
    assert '(subpath "/h/\\"odd\\"")' in profile
    write = next(line for line in lines if line.startswith("(allow file-write*"))
    assert write == '(allow file-write* (subpath "/d/x") (subpath "/dev/null") (subpath "/h/out"))'
    assert "network" not in profile and "process-fork" not in profile
