"""The privacy panel against the real daemon's audit log: rows, filters, Verify."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pytestqt.qtbot import QtBot

from daemon.errors import EgressDenied, EgressFailed
from gui.connection import DaemonConnection
from gui.privacy import PrivacyWindow, rows
from tests.conftest import Daemon
from tests.gui.conftest import screenshot

Connect = Callable[..., DaemonConnection]
PULL = {"repo": "acme/tiny", "file": "tiny.gguf", "endpoint": "http://127.0.0.1:9"}


def open_privacy(qtbot: QtBot, conn: DaemonConnection) -> PrivacyWindow:
    win = PrivacyWindow(conn)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitUntil(lambda: win.loading == 0, timeout=30_000)
    return win


def test_an_empty_log_says_nothing_left_and_verifies_intact(
    qtbot: QtBot, fresh_daemon: Daemon, connect: Connect
) -> None:
    win = open_privacy(qtbot, connect(fresh_daemon))
    assert win.stack.currentWidget() is win.empty
    assert win.headline.text().startswith("Offline")
    assert win.offline.isChecked()
    win.verify_button.click()
    qtbot.waitUntil(lambda: win.verify_result is not None, timeout=30_000)
    assert win.verify_result is not None and win.verify_result["ok"] is True
    assert win.verdict.text().startswith("✓ The log is intact")


def test_refused_and_allowed_calls_are_listed_filtered_and_verified(
    qtbot: QtBot, fresh_daemon: Daemon, connect: Connect
) -> None:
    with fresh_daemon.client() as c:
        with pytest.raises(EgressDenied):  # offline: refused, and audited
            c.call("models.pull", PULL)
        c.call("net.allow", {"host": "127.0.0.1"})
        c.call("net.set_mode", {"mode": "allow-listed"})
        with pytest.raises(EgressFailed):  # allowed, but nothing listens there
            c.call("models.pull", PULL)
        entries = c.call("audit.list")["entries"]
    expected = rows(entries)
    assert {r["kind"] for r in expected} == {"refused", "data"}

    win = open_privacy(qtbot, connect(fresh_daemon))
    assert win.stack.currentWidget() is win.table
    assert win.proxy.rowCount() == len(expected)
    assert not win.offline.isChecked()
    assert "127.0.0.1" in win.headline.text()
    texts = [win.proxy.index(r, 4).data() for r in range(win.proxy.rowCount())]
    assert any(t.startswith("Refused") for t in texts)
    assert any(t.startswith("Allowed") for t in texts)
    assert "refused" in win.summary.text()

    win.show_kind("refused")
    assert win.proxy.rowCount() == sum(r["kind"] == "refused" for r in expected) >= 1
    win.show_kind("all")
    win.filter.setText("no-such-host.example")
    assert win.proxy.rowCount() == 0
    win.filter.setText("acme/tiny")
    assert win.proxy.rowCount() == len(expected)
    win.filter.clear()

    win.verify_button.click()
    qtbot.waitUntil(lambda: win.verify_result is not None, timeout=30_000)
    assert "intact" in win.verdict.text()
    screenshot(win, "privacy")

    win.offline.click()  # back to offline, from the panel
    qtbot.waitUntil(lambda: win.loading == 0, timeout=30_000)
    with fresh_daemon.client() as c:
        assert c.call("net.status")["mode"] == "offline"
    assert win.headline.text().startswith("Offline")


def test_a_failed_verification_is_stated_calmly_and_new_fields_are_ignored(
    qtbot: QtBot, fresh_daemon: Daemon, connect: Connect
) -> None:
    win = open_privacy(qtbot, connect(fresh_daemon))
    win._show_verdict(
        {
            "ok": False,
            "entries": 10,
            "checkpoints": 2,
            "bad_seq": 7,
            "problem": "edited",
            "summary": "bad at seq 7 (edited)",
            "signer": {"new": "field"},
        }
    )
    text = win.verdict.text()
    assert "does not check out" in text and "bad at seq 7" in text
    assert "conversations are not affected" in text
    assert (
        rows([{"phase": "future-phase", "x": 1}, {"phase": "outcome", "host": "h"}])[0]["where"]
        == "h"
    )
