"""First-run dialogs against a real daemon with no keychain, and with a locked vault."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PySide6.QtWidgets import QApplication, QLabel
from pytestqt.qtbot import QtBot

from gui.connection import DaemonConnection
from gui.first_run import FirstRun, TrayState
from gui.model_choice import ModelChoice, size
from tests.conftest import Daemon, make_home, start_daemon
from tests.gui.conftest import screenshot

Connect = Callable[..., DaemonConnection]
NO_KEYCHAIN = "keyring.backends.fail.Keyring"
PASSPHRASE = "correct horse battery"


@pytest.fixture
def keyless(monkeypatch: pytest.MonkeyPatch) -> Iterator[Daemon]:
    """A daemon on a box with no usable keychain: no vault until a passphrase is set."""
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", NO_KEYCHAIN)
    home = make_home()
    daemon = start_daemon(home)
    yield daemon
    daemon.stop()
    shutil.rmtree(home, ignore_errors=True)


def first_run(conn: DaemonConnection, tmp_path: Path) -> FirstRun:
    return FirstRun(conn, TrayState(tmp_path / "tray.json"))


def vault(daemon: Daemon) -> dict[str, object]:
    with daemon.client() as c:
        status: dict[str, object] = c.call("vault.status")
    return status


def test_no_keychain_offers_a_passphrase_and_creates_the_vault_under_it(
    qtbot: QtBot, keyless: Daemon, connect: Connect, tmp_path: Path
) -> None:
    assert vault(keyless)["reason"] == "not_initialized"
    flow = first_run(connect(keyless), tmp_path)
    flow.check()
    qtbot.waitUntil(lambda: flow.history_dialog is not None and flow.history_dialog.isVisible())
    dialog = flow.history_dialog
    assert dialog is not None
    qtbot.addWidget(dialog)
    screenshot(dialog, "first-run-history")
    dialog.passphrase.setText(PASSPHRASE)
    dialog.confirm.setText("something else")
    dialog.protect.click()
    assert dialog.error.text() == "The two passphrases differ." and dialog.isVisible()
    assert vault(keyless)["initialized"] is False  # nothing was sent
    dialog.confirm.setText(PASSPHRASE)
    with qtbot.waitSignal(flow.vaultChanged, timeout=60_000) as changed:
        dialog.protect.click()
    assert changed.args[0]["protection"] == "passphrase" and not changed.args[0]["locked"]
    assert not dialog.isVisible()
    status = vault(keyless)
    assert status["initialized"] is True and status["locked"] is False


def test_chatting_without_history_is_remembered_and_not_asked_again(
    qtbot: QtBot, keyless: Daemon, connect: Connect, tmp_path: Path
) -> None:
    conn = connect(keyless)
    flow = first_run(conn, tmp_path)
    flow.check()
    qtbot.waitUntil(lambda: flow.history_dialog is not None and flow.history_dialog.isVisible())
    assert flow.history_dialog is not None
    flow.history_dialog.without.click()
    assert TrayState(tmp_path / "tray.json").get("declined_history")
    later = first_run(conn, tmp_path)  # the next start of the tray
    later.check()
    qtbot.waitUntil(lambda: later.intro_dialog is not None, timeout=30_000)
    assert later.history_dialog is None
    assert vault(keyless)["initialized"] is False


def test_a_locked_vault_asks_for_its_passphrase_and_a_wrong_one_is_refused(
    qtbot: QtBot, keyless: Daemon, connect: Connect, tmp_path: Path
) -> None:
    with keyless.client() as c:
        c.call("vault.init", {"passphrase": PASSPHRASE})
    keyless.stop()
    locked = start_daemon(keyless.home)  # a passphrase vault starts locked
    keyless.proc = locked.proc  # the fixture stops whichever runs
    assert vault(locked)["reason"] == "passphrase_locked"
    flow = first_run(connect(locked), tmp_path)
    flow.check()
    qtbot.waitUntil(lambda: flow.unlock_dialog is not None and flow.unlock_dialog.isVisible())
    dialog = flow.unlock_dialog
    assert dialog is not None
    dialog.passphrase.setText("not it at all")
    dialog.unlock.click()
    qtbot.waitUntil(lambda: not dialog.error.isHidden(), timeout=60_000)
    assert dialog.error.text() == "That passphrase does not match. Try again."
    assert vault(locked)["locked"] is True and dialog.isVisible()
    screenshot(dialog, "first-run-unlock")
    dialog.passphrase.setText(PASSPHRASE)
    with qtbot.waitSignal(flow.vaultChanged, timeout=60_000):
        dialog.unlock.click()
    assert vault(locked)["locked"] is False and not dialog.isVisible()


def test_the_tiny_model_is_introduced_once(
    qtbot: QtBot, daemon: Daemon, connect: Connect, tmp_path: Path
) -> None:
    conn = connect(daemon)
    flow = first_run(conn, tmp_path)
    flow.check()  # the shared daemon's vault is open: straight to the model's introduction
    qtbot.waitUntil(lambda: flow.intro_dialog is not None, timeout=30_000)
    assert flow.intro_dialog is not None
    text = flow.intro_dialog.findChildren(type(flow.intro_dialog.layout().itemAt(0).widget()))
    words = " ".join(label.text() for label in text)
    assert "tiny model" in words and "not good at" in words and "import" in words
    with daemon.client() as c:  # the catalog shipped with Hearth, and its pick for here
        catalog = c.call("models.catalog")
    best = next(m for m in catalog["models"] if m["name"] == catalog["recommended"])
    dialog = flow.intro_dialog
    assert isinstance(dialog, ModelChoice)
    qtbot.waitUntil(dialog.box.isVisible, timeout=30_000)
    words = " ".join(label.text() for label in dialog.findChildren(QLabel))
    assert f"Recommended for this computer: {best['name']}" in words
    assert size(best["download"]["size_mb"]) in words and best["license"] in words
    assert "only network call" in words
    QApplication.processEvents()
    screenshot(flow.intro_dialog, "first-run-model")
    flow.intro_dialog.accept()
    assert TrayState(tmp_path / "tray.json").get("seen_model_intro")
    again = first_run(conn, tmp_path)
    again.intro_model()  # the next start: remembered, so it asks nothing
    assert again.intro_dialog is None
