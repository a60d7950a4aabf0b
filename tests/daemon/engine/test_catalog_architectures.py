"""Every architecture in the catalog loads and generates through the daemon: on llama.cpp
as a GGUF file, and on MLX as an MLX folder, with the family's chat template and stop token.

The models are tiny and random (see tiny_models.py). A random one generates until
max_tokens; a "forced" one answers its family's end token first, so the reply must end at
once, empty: the engine knew that token ends a turn. The prompt's token count must be the
family template's, rendered as the runner renders it, so the model's own template was used.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from daemon import catalog
from daemon.engine.prompt import render
from daemon.errors import InvalidModel
from tests.conftest import Daemon, make_home, start_daemon
from tests.daemon.engine.tiny_models import (
    ARCHS,
    FAMILIES,
    hf_tokenizer,
    vocab,
    write_gguf,
    write_mlx,
)

MESSAGES = [
    {"role": "system", "content": "Answer briefly."},
    {"role": "user", "content": "Hello there, how are you today?"},
]


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tiny")
    for arch in ARCHS:
        for forced in (False, True):
            tag = f"{arch}-{'forced' if forced else 'random'}"
            write_gguf(folder / f"tiny-{tag}.gguf", arch, forced=forced)
            write_mlx(folder / f"tiny-{tag}-mlx", arch, forced=forced)
    return folder


@pytest.fixture(scope="module")
def tiny_daemon(models_dir: Path) -> Iterator[Daemon]:
    home = make_home("keep_alive = 0\n")
    daemon = start_daemon(home)
    with daemon.client() as c:
        for entry in sorted(models_dir.iterdir()):
            c.call("models.import", {"path": str(entry)})
    yield daemon
    daemon.stop()
    shutil.rmtree(home, ignore_errors=True)


def expected_prompt_tokens(arch: str) -> int:
    family = FAMILIES[arch]
    specials = {"bos_token": family.bos or "", "eos_token": family.eos}
    text = render(family.template, MESSAGES, specials)
    ids: list[int] = hf_tokenizer(vocab(family), family).encode(text, add_special_tokens=False).ids
    return len(ids)


def chat(daemon: Daemon, model: str, engine: str, max_tokens: int) -> dict[str, Any]:
    options = {"temperature": 0, "max_tokens": max_tokens, "engine": engine}
    with daemon.client() as c:
        result: dict[str, Any] = c.call(
            "chat", {"model": model, "messages": MESSAGES, "options": options, "store": False}
        )
    return result


def test_the_tiny_models_cover_every_catalog_architecture() -> None:
    wanted = {d.architecture for e in catalog.load() for d in e.downloads.values()}
    made = {f.arch for f in FAMILIES.values()} | {f.mlx_type for f in FAMILIES.values()}
    assert wanted <= made


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize(("engine", "suffix"), [("llamacpp", ""), ("mlx", "-mlx")])
def test_a_random_model_generates_with_its_familys_template(
    tiny_daemon: Daemon, arch: str, engine: str, suffix: str
) -> None:
    answer = chat(tiny_daemon, f"tiny-{arch}-random{suffix}", engine, max_tokens=4)
    assert answer["engine"] == engine
    assert answer["finish_reason"] == "length" and answer["tokens"]["completion"] == 4
    assert answer["tokens"]["prompt"] == expected_prompt_tokens(arch)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize(("engine", "suffix"), [("llamacpp", ""), ("mlx", "-mlx")])
def test_a_reply_ends_at_the_familys_end_of_turn_token(
    tiny_daemon: Daemon, arch: str, engine: str, suffix: str
) -> None:
    answer = chat(tiny_daemon, f"tiny-{arch}-forced{suffix}", engine, max_tokens=8)
    assert answer["finish_reason"] == "stop"
    assert answer["text"] == "" and answer["tokens"]["completion"] == 0
    assert answer["tokens"]["prompt"] == expected_prompt_tokens(arch)


@pytest.mark.parametrize("arch", [a for a in ARCHS if a != "llama"])
def test_mlx_refuses_a_gguf_of_another_architecture_pointing_to_the_mlx_folder(
    tiny_daemon: Daemon, arch: str
) -> None:
    with pytest.raises(InvalidModel) as refused:
        chat(tiny_daemon, f"tiny-{arch}-random", "mlx", max_tokens=2)
    message = refused.value.message
    assert f"architecture {arch!r} is not supported" in message
    assert "MLX model folder" in message and "--format mlx" in message
    with tiny_daemon.client() as c:
        assert not [r for r in c.call("status")["runners"] if r["engine"] == "mlx"]
