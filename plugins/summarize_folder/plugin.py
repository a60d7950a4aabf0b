"""A new .md or .txt file in ~/Notes gets a NAME.summary.md beside it."""

from __future__ import annotations

from pathlib import Path

from plugins.sdk import Context, FileEvent, Plugin

plugin = Plugin()
SUFFIX = ".summary.md"
MAX_CHARS = 6000  # the small default model has a short context: summarize the start


def summary_path(note: Path) -> Path:
    return note.with_name(note.stem + SUFFIX)


def summarize(ctx: Context, note: Path) -> Path | None:
    if note.name.endswith(SUFFIX) or not note.is_file():
        return None
    text = note.read_text(encoding="utf-8", errors="replace")[:MAX_CHARS].strip()
    if not text:
        return None
    summary = ctx.model.generate(
        f"Summarize this note in two or three sentences.\n\n{text}",
        temperature=0,
        max_tokens=160,
    ).strip()
    target = summary_path(note)
    target.write_text(f"# Summary of {note.name}\n\n{summary}\n", encoding="utf-8")
    ctx.log.info(f"summarized {note.name}")
    return target


@plugin.on_file("~/Notes", patterns=["*.md", "*.txt"], debounce=1.0)
def new_note(ctx: Context, event: FileEvent) -> None:
    """Summarize a note once it has been quiet for a second."""
    if event.path.name.endswith(SUFFIX) or summary_path(event.path).exists():
        return  # ours, or already summarized
    if summarize(ctx, event.path) is not None:
        ctx.notify("Note summarized", event.path.name)


@plugin.command("summarize")
def summarize_command(ctx: Context, path: str) -> str:
    """Summarize one note now (again, if it already has a summary)."""
    target = summarize(ctx, Path(path).expanduser())
    if target is None:
        return f"nothing to summarize in {path}"
    return target.read_text(encoding="utf-8")
