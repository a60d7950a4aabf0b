"""Plugins' model calls are background work (issue 17), on the real daemon and model."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from .support import TEST_PLUGINS, PluginDaemon, plugin_daemon, wait_for


@pytest.fixture(scope="module")
def daemon() -> Iterator[PluginDaemon]:
    with plugin_daemon() as d:
        d.install(TEST_PLUGINS / "asker")
        yield d


@pytest.mark.timeout(900)
def test_a_plugins_model_call_is_background_work_even_when_it_asks_for_interactive(
    daemon: PluginDaemon,
) -> None:
    answers: list[Any] = []
    run = threading.Thread(
        target=lambda: answers.append(
            daemon.call("plugins.run", {"id": "asker", "command": "ask", "args": ["100"]})
        ),
        daemon=True,
    )
    run.start()
    shown = wait_for(
        lambda: daemon.call("status")["requests"] or answers, 300, "the plugin's model call"
    )
    assert shown != answers, "the call ended before status could show it"
    assert [r["priority"] for r in shown] == ["background"]
    run.join(600)
    assert answers and answers[0]["result"], "the plugin got no answer"
