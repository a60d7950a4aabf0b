"""Clean the clipboard: tracking parameters out of links, tidy whitespace, and with
``rewrite``, a proofread by the local model."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from plugins.sdk import Context, Plugin

plugin = Plugin()
TRACKING = re.compile(
    r"^(utm_\w+|fbclid|gclid|dclid|gbraid|wbraid|msclkid|mc_cid|mc_eid|igshid|yclid|_hsenc|"
    r"_hsmi|mkt_tok|oly_anon_id|oly_enc_id|vero_id|ref_src|ref_url|si|spm|trk)$",
    re.IGNORECASE,
)
URL = re.compile(r"https?://[^\s<>\"']+")


def clean_url(url: str) -> str:
    parts = urlsplit(url)
    query = [
        (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not TRACKING.match(k)
    ]
    return urlunsplit(parts._replace(query=urlencode(query)))


def clean_text(text: str) -> str:
    """Links without trackers; no trailing spaces, runs of spaces, or 3+ blank lines."""
    text = URL.sub(lambda m: clean_url(m.group(0)), text)
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\u00a0", " ")
    lines = [re.sub(r"[ \t]{2,}", " ", line).rstrip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def clean(ctx: Context, rewrite: bool) -> str:
    text = clean_text(ctx.clipboard.read())
    if rewrite and text:
        text = ctx.model.generate(
            f"Correct the spelling and grammar of this text. Answer with the text only.\n\n{text}",
            temperature=0,
            max_tokens=400,
        ).strip()
    ctx.clipboard.write(text)
    return text


@plugin.command("clean")
def clean_command(ctx: Context, *options: str) -> str:
    """Clean the clipboard (add 'rewrite' to also proofread it)."""
    return clean(ctx, rewrite="rewrite" in options)


@plugin.on_hotkey("ctrl+alt+v")
def clean_hotkey(ctx: Context) -> str:
    """Clean the clipboard"""
    return clean(ctx, rewrite=False)
