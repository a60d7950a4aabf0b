"""daily-digest, end to end with the real default model."""

from __future__ import annotations

import os
import time

from tests.daemon.pluginhost.support import plugin_daemon


def test_the_digest_covers_the_notes_changed_today_and_is_kept_and_announced() -> None:
    with plugin_daemon() as d:
        notes = d.user_home / "Notes"
        (notes / "work").mkdir(parents=True)
        (notes / "shopping.md").write_text("Buy milk, eggs and bread for the weekend.")
        (notes / "work" / "standup.txt").write_text("Ship the plugin host; review the tray.")
        old = notes / "last-year.md"
        old.write_text("Something from long ago.")
        a_year_ago = time.time() - 365 * 86400
        os.utime(old, (a_year_ago, a_year_ago))
        d.enable("daily-digest")
        info = d.info("daily-digest")
        assert info["triggers"] == [
            {"handler": "evening", "kind": "cron", "expression": "0 18 * * 1-5"}
        ]
        out = d.hearth("plugins", "run", "daily-digest", "digest")
        assert out.returncode == 0, out.stderr
        day = time.strftime("%Y-%m-%d")
        lines = out.stdout.strip().splitlines()
        assert lines[0] == f"# Digest for {day}"
        items = [line for line in lines if line.startswith("- **")]
        assert [i.split("**")[1] for i in items] == ["shopping.md", "work/standup.txt"]
        assert all(len(i.split("**: ", 1)[1]) > 5 for i in items), items
        kept = d.paths.data / "plugins" / "daily-digest" / f"digest-{day}.md"
        assert kept.read_text() == out.stdout.rstrip("\n") + "\n"
        notes_seen = d.call("plugins.notifications")["notifications"]
        assert {
            "plugin": "daily-digest",
            "title": "Daily digest",
            "text": "2 note(s) changed today",
        }.items() <= notes_seen[-1].items()
