"""A digest of the day's notes: each changed note summarized in a line, kept in the
plugin's data dir (digest-YYYY-MM-DD.md) and announced with a notification."""

from __future__ import annotations

import time
from pathlib import Path

from plugins.sdk import Context, Plugin

plugin = Plugin()
NOTES = Path("~/Notes").expanduser()
DAY = 86400
MAX_NOTES = 20
MAX_CHARS = 1500


def changed_notes(since: float) -> list[Path]:
    found = [
        p
        for p in NOTES.rglob("*")
        if p.suffix in (".md", ".txt")
        and p.is_file()
        and not p.name.endswith(".summary.md")
        and p.stat().st_mtime >= since
    ]
    return sorted(found, key=lambda p: p.stat().st_mtime)[-MAX_NOTES:]


def digest(ctx: Context, hours: float = 24) -> str:
    notes = changed_notes(time.time() - hours * 3600)
    day = time.strftime("%Y-%m-%d")
    lines = [f"# Digest for {day}", ""]
    if not notes:
        lines.append("No notes changed.")
    for note in notes:
        text = note.read_text(encoding="utf-8", errors="replace")[:MAX_CHARS].strip()
        line = (
            ctx.model.generate(
                f"Summarize this note in one sentence.\n\n{text}", temperature=0, max_tokens=60
            )
            .strip()
            .replace("\n", " ")
        )
        lines.append(f"- **{note.relative_to(NOTES)}**: {line}")
    text = "\n".join(lines) + "\n"
    (ctx.data_dir / f"digest-{day}.md").write_text(text, encoding="utf-8")
    ctx.storage["last"] = {"day": day, "notes": len(notes)}
    ctx.notify("Daily digest", f"{len(notes)} note(s) changed today")
    return text


@plugin.cron("0 18 * * 1-5")
def evening(ctx: Context) -> None:
    """The digest, on weekday evenings."""
    digest(ctx)


@plugin.command("digest")
def digest_command(ctx: Context, hours: str = "24") -> str:
    """Write the digest of the notes changed in the last HOURS (default 24) now."""
    return digest(ctx, float(hours))
