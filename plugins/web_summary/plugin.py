"""Summarize a web page from the one host this plugin may reach."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from plugins.sdk import Context, Plugin

plugin = Plugin()
MAX_CHARS = 4000


class _Text(HTMLParser):
    """The visible text of a page: no scripts, styles or navigation."""

    SKIP = frozenset({"script", "style", "nav", "header", "footer", "noscript", "svg"})

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.title = ""
        self._skip = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._skip += tag in self.SKIP
        self._in_title = tag == "title"

    def handle_endtag(self, tag: str) -> None:
        self._skip -= tag in self.SKIP and self._skip > 0
        self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        elif not self._skip:
            self.parts.append(data)


def page_text(html: str) -> tuple[str, str]:
    parser = _Text()
    parser.feed(html)
    text = re.sub(r"\s+", " ", " ".join(parser.parts)).strip()
    return parser.title.strip(), text


@plugin.command("summarize")
def summarize(ctx: Context, url: str) -> str:
    """Summarize the page at URL."""
    if not url.startswith(("http://", "https://")):
        url = "https://en.wikipedia.org/wiki/" + url.replace(" ", "_")
    response = ctx.fetch(url)
    if not response.ok:
        return f"{url} answered {response.status}"
    title, text = page_text(response.text)
    summary = ctx.model.generate(
        f"Summarize this web page in three sentences.\n\nTitle: {title}\n\n{text[:MAX_CHARS]}",
        temperature=0,
        max_tokens=200,
    ).strip()
    ctx.log.info(f"summarized {url}")
    return f"{title or url}\n\n{summary}"
