"""summarize-folder, end to end with the real default model: a new note in ~/Notes gets
a NAME.summary.md beside it, and nothing else does."""

from __future__ import annotations

import time

from tests.daemon.pluginhost.support import plugin_daemon, wait_for

NOTE = """# Trip to Lisbon

We fly to Lisbon on the 3rd of May and stay four nights in Alfama. Ana books the hotel,
Tom finds a restaurant for Friday, and we visit the tile museum on Saturday morning.
"""


def test_a_new_note_gets_a_summary_beside_it_and_the_summary_is_left_alone() -> None:
    with plugin_daemon() as d:
        notes = d.user_home / "Notes"
        notes.mkdir()
        (notes / "old.md").write_text("An old note, here before the plugin.")
        d.enable("summarize-folder")
        assert d.info("summarize-folder")["state"] == "running"
        (notes / "trip.md").write_text(NOTE)
        (notes / "photo.png").write_bytes(b"\x89PNG not a note")
        summary = notes / "trip.summary.md"
        text = wait_for(lambda: summary.exists() and summary.read_text(), 240, "the summary")
        body = text.removeprefix("# Summary of trip.md\n\n").strip()
        assert text.startswith("# Summary of trip.md") and len(body) > 20, text
        assert wait_for(
            lambda: any(
                n["title"] == "Note summarized" and n["text"] == "trip.md"
                for n in d.call("plugins.notifications")["notifications"]
            ),
            30,
            "the notification",
        )
        time.sleep(3)  # any (wrong) reaction to the summary or the png would be done by now
        assert sorted(p.name for p in notes.iterdir()) == [
            "old.md",
            "photo.png",
            "trip.md",
            "trip.summary.md",
        ]
        assert "summarized trip.md" in d.log_text("summarize-folder")
        out = d.hearth("plugins", "run", "summarize-folder", "summarize", str(notes / "old.md"))
        assert out.returncode == 0 and out.stdout.startswith("# Summary of old.md"), out.stderr
        assert (notes / "old.summary.md").exists()
