"""Pure logic: stop strings, rewrite clean-up, config, framing, error codes."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon import errors, protocol
from daemon.config import Config
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


@pytest.mark.parametrize(
    "text", ['engine = "gpu"', "keep_alive = 'x'", "nonsense = 1", "[[presets]]\nname = 1", "= ="]
)
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
