"""Pure logic: stop strings, rewrite clean-up, config, framing, error codes."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon import errors, protocol
from daemon.config import Config
from daemon.engine.backend import Token
from daemon.engine.runner import Runner
from daemon.engine.stops import StopScanner
from daemon.presets import RewriteCleaner


def feed_all(scanner: StopScanner, pieces: list[str]) -> tuple[str, bool]:
    out = ""
    for piece in pieces:
        text, hit = scanner.feed(piece)
        out += text
        if hit:
            return out, True
    return out + scanner.flush(), False


def test_a_stop_string_split_across_tokens_is_never_emitted() -> None:
    out, hit = feed_all(StopScanner(["END"]), ["Hello E", "N", "D tail"])
    assert (out, hit) == ("Hello ", True)


def test_a_near_miss_of_a_stop_string_is_released_intact() -> None:
    out, hit = feed_all(StopScanner(["END"]), ["Hello E", "N", "ough"])
    assert (out, hit) == ("Hello ENough", False)


def clean(text: str, chunk: int = 3) -> str:
    cleaner = RewriteCleaner()
    out = "".join(cleaner.feed(text[i : i + chunk]) for i in range(0, len(text), chunk))
    out += cleaner.feed("", final=True)
    assert out == cleaner.text
    return out


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Sure! Here is the rewritten text:\n\nHello there.", "Hello there."),
        ('The corrected text is: "I have a cat."', "I have a cat."),
        ("“Fine, thanks.”", "Fine, thanks."),
        ("Note: the meeting moved.", "Note: the meeting moved."),
        ("  Plain answer.  \n", "Plain answer."),
        ("- one\n- two", "- one\n- two"),
    ],
)
def test_rewrite_output_is_cleaned_the_same_way_streamed_or_whole(raw: str, expected: str) -> None:
    assert clean(raw) == expected
    assert clean(raw, chunk=1000) == expected


def test_config_defaults_and_user_presets(tmp_path: Path) -> None:
    assert Config.load(tmp_path / "missing.toml") == Config()
    path = tmp_path / "config.toml"
    path.write_text('keep_alive = 0\n[[presets]]\nname = "pirate"\ninstruction = "Arr."\n')
    config = Config.load(path)
    assert config.keep_alive == 0 and config.presets == {"pirate": "Arr."}


def test_a_preset_goes_to_the_remote_model_only_when_it_says_route_remote(
    tmp_path: Path,
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        '[[presets]]\nname = "here"\ninstruction = "A."\n'
        '[[presets]]\nname = "also-here"\ninstruction = "B."\nroute = "local"\n'
        '[[presets]]\nname = "big"\ninstruction = "C."\nroute = "remote"\n'
    )
    config = Config.load(path)
    assert config.remote_presets == {"big"} and set(config.presets) == {"here", "also-here", "big"}
    assert Config().remote_presets == frozenset()
    path.write_text('[[presets]]\nname = "x"\ninstruction = "A."\nroute = "cloud"\n')
    with pytest.raises(ValueError, match=r"config\.toml:1: preset 'x': route must be"):
        Config.load(path)


@pytest.mark.parametrize(
    "text",
    ['engine = "gpu"', "keep_alive = 'x'", "nonsense = 1", "[[presets]]\nname = 1", "= =",
     "background_nice = 20", "background_nice = -1"],
)  # fmt: skip
def test_bad_config_is_a_clear_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=r"config\.toml"):
        Config.load(path)


def test_every_error_class_has_its_own_code_and_kind() -> None:
    classes = errors.all_errors()
    assert len({c.code for c in classes}) == len(classes)
    assert len({c.kind for c in classes}) == len(classes)
    for cls in classes:
        rebuilt = errors.from_rpc(cls("boom", x=1).to_rpc())
        assert type(rebuilt) is cls and rebuilt.data == {"x": 1}


def test_notifications_have_no_id_and_requests_need_a_method() -> None:
    req = protocol.parse_request({"jsonrpc": "2.0", "method": "status"})
    assert req.is_notification and req.params == {}
    with pytest.raises(errors.InvalidRequest):
        protocol.parse_request({"jsonrpc": "2.0", "id": True, "method": "x"})


class InstantBackend:
    """Tokens as fast as Python can make them: a stand-in for a very fast engine."""

    def __init__(self, n: int) -> None:
        self.n = n

    def context_length(self) -> int:
        return 4096

    def chat_template(self) -> str:
        return "{% for m in messages %}{{ m.content }}{% endfor %}"

    def special_tokens(self) -> dict[str, str]:
        return {}

    def tokenize(self, text: str) -> list[int]:
        return [1] * len(text.split())

    def generate(self, prompt: list[int], sampling: object) -> Iterator[Token]:
        for i in range(self.n):
            yield Token(i, f"w{i} ")


def test_the_runner_gathers_fast_tokens_into_few_deltas_that_add_up() -> None:
    out = io.StringIO()
    runner = Runner(InstantBackend(3000), out)  # type: ignore[arg-type]
    runner.generate({"rid": 1, "messages": [{"role": "user", "content": "go"}]})
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    deltas, done = events[:-1], events[-1]
    assert done["event"] == "done" and done["result"]["tokens"]["completion"] == 3000
    assert deltas[0]["tokens"] == 1  # the first token is sent at once
    assert len(deltas) < 100  # 3,000 tokens in a few ms: a handful of deltas
    assert "".join(d["text"] for d in deltas) == done["result"]["text"]
    assert deltas[-1]["tokens"] == 3000
