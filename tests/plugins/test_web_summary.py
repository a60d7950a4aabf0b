"""web-summary, end to end: a page from a local HTTP server, fetched through the egress
gateway (which allows only that host, for this plugin only), summarized by the real
default model, with the calls in the audit log."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from daemon.cli.plugins import EXIT_REFUSED
from plugins import web_summary
from plugins.web_summary.plugin import page_text
from tests.daemon.pluginhost.support import copy_plugin, plugin_daemon

PAGE = b"""<html><head><title>Lisbon</title><script>var tracking = 1;</script></head>
<body><nav>Home | About</nav><h1>Lisbon</h1><p>Lisbon is the capital of Portugal, on the
Tagus river. It is known for its trams, its tiles and the Alfama district.</p></body></html>"""


class Page(BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        Page.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[int]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


def test_page_text_drops_scripts_and_navigation() -> None:
    title, text = page_text(PAGE.decode())
    assert title == "Lisbon"
    assert text.startswith("Lisbon Lisbon is the capital of Portugal")
    assert "tracking" not in text and "Home" not in text


def test_a_page_from_its_one_host_is_summarized_and_audited(server: int, tmp_path: Path) -> None:
    Page.hits.clear()
    folder = copy_plugin(
        Path(web_summary.__file__).parent,
        tmp_path / "web-local",
        {'id = "web-summary"': 'id = "web-local"', '"en.wikipedia.org"': '"127.0.0.1"'},
    )
    with plugin_daemon() as d:
        assert d.hearth("net", "mode", "allow-listed").returncode == 0
        d.install(folder)
        rules = d.call("net.status")["rules"]
        assert rules == [{"host": "127.0.0.1", "caller": "plugin:web-local"}]
        url = f"http://127.0.0.1:{server}/wiki/Lisbon?session=secret"
        out = d.hearth("plugins", "run", "web-local", "summarize", url)
        assert out.returncode == 0, out.stderr
        title, summary = out.stdout.split("\n\n", 1)
        assert title == "Lisbon" and len(summary.strip()) > 20
        assert Page.hits == ["/wiki/Lisbon?session=secret"]
        audit = d.hearth("audit", "list", "--caller", "plugin:web-local")
        assert audit.returncode == 0 and "127.0.0.1" in audit.stdout
        entries = d.call("audit.list", {"caller": "plugin:web-local"})["entries"]
        assert [
            (e["phase"], e["decision"], e["status"] if e["phase"] == "outcome" else None)
            for e in entries
        ] == [("intent", "allow", None), ("outcome", "allow", 200)]
        assert entries[0]["rule"] == "127.0.0.1 for plugin:web-local"
        assert all("secret" not in str(e) for e in entries)  # no query strings in the log
        # Any other host: refused before a byte leaves, and audited.
        other = d.hearth(
            "plugins", "run", "web-local", "summarize", f"http://localhost:{server}/wiki/Lisbon"
        )
        assert other.returncode == EXIT_REFUSED
        assert "web-local may not reach localhost" in other.stderr
        assert Page.hits == ["/wiki/Lisbon?session=secret"]
        last = d.call("audit.list", {"caller": "plugin:web-local"})["entries"][-2]
        assert (last["host"], last["decision"]) == ("localhost", "deny")
        # Offline, even the granted host is refused; disabling withdraws the rule.
        assert d.hearth("net", "offline").returncode == 0
        off = d.hearth("plugins", "run", "web-local", "summarize", url)
        assert off.returncode == EXIT_REFUSED and "Hearth is offline" in off.stderr
        assert d.hearth("plugins", "disable", "web-local").returncode == 0
        assert d.call("net.status")["rules"] == []


def test_the_shipped_plugin_reaches_only_wikipedia(server: int) -> None:
    with plugin_daemon() as d:
        d.hearth("net", "mode", "allow-listed")
        d.enable("web-summary")
        out = d.hearth("plugins", "run", "web-summary", "summarize", f"http://127.0.0.1:{server}/")
        assert out.returncode == EXIT_REFUSED
        assert "web-summary may not reach 127.0.0.1: its manifest grants en.wikipedia.org" in (
            out.stderr
        )
        assert d.call("net.status")["rules"] == [
            {"host": "en.wikipedia.org", "caller": "plugin:web-summary"}
        ]
