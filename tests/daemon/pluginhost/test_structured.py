"""A plugin's ctx.model.generate / ctx.model.chat with format=: the daemon holds the
answer to the schema and the plugin gets the parsed value (or a typed error it can catch)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest

from .support import TEST_PLUGINS, PluginDaemon, plugin_daemon


@pytest.fixture(scope="module")
def daemon() -> Iterator[PluginDaemon]:
    with plugin_daemon() as d:
        d.install(TEST_PLUGINS / "shaper")
        yield d


def run(daemon: PluginDaemon, command: str, text: str) -> Any:
    return daemon.call("plugins.run", {"id": "shaper", "command": command, "args": [text]})[
        "result"
    ]


def test_generate_with_a_schema_gives_the_plugin_a_value_that_validates(
    daemon: PluginDaemon,
) -> None:
    from tests.daemon.pluginhost.plugins.shaper.plugin import PERSON

    got = run(daemon, "person", "Ann is 34 years old. Give her name and age.")
    assert got["type"] == "dict"
    jsonschema.validate(got["value"], PERSON)


def test_chat_with_format_json_gives_the_plugin_an_object(daemon: PluginDaemon) -> None:
    got = run(daemon, "any", "Describe a cat as a JSON object.")
    assert got["type"] == "dict"


def test_an_answer_cut_short_is_an_error_the_plugin_can_catch(daemon: PluginDaemon) -> None:
    got = run(daemon, "short", "Ann is 34 years old.")
    assert got == {"kind": "structured_output_failed", "reason": "length"}


def test_without_format_the_plugin_still_gets_text(daemon: PluginDaemon) -> None:
    got = run(daemon, "plain", "Say hello.")
    assert got["type"] == "str" and got["value"]
