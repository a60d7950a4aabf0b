"""The first-run model screen: what the tiny built-in model can do, and the catalog model
recommended for this computer, downloaded with one click.

Before anything is fetched the screen shows the model's size, RAM need, license and
source, and the daemon's own sentence that this download is the only network call and
that it is audited (`models.catalog`'s ``network``). Clicking Download is the user's
consent: `models.pull {model, consent: true}`, whose progress fills the bar.
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFrame,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from daemon.errors import HearthError
from gui.connection import DaemonConnection, Reply
from gui.widgets import emphasize

log = logging.getLogger("hearth.tray")

HEADLINE = "Hearth starts with a tiny model (SmolLM2, 135 million parameters)."
INTRO = (
    "<p>It is fast and runs on any computer. It is good at fixing spelling and grammar, "
    "rewording a sentence, short summaries and simple questions.</p>"
    "<p>It is not good at facts (it often makes them up), arithmetic, code, long "
    "reasoning, or anything recent. For better answers use a bigger model: download the "
    "one Hearth recommends for this computer, or import a model file (GGUF) you already "
    "have. Either stays on this computer like everything else.</p>"
)
NETWORK = (  # what the daemon says, when an older one does not say it
    "This download is the only network call Hearth makes, and it is written to the "
    "audit log (`hearth audit list`)."
)
SCALE = 1000  # the progress bar's range


def size(mb: float) -> str:
    return f"{mb:.0f} MB" if mb < 1000 else f"{mb / 1000:.1f} GB"


def license_html(model: dict[str, Any]) -> str:
    name = html.escape(str(model["license"]))
    url = model.get("license_url")
    text = f'<a href="{html.escape(url)}">{name}</a>' if url else name
    if model.get("gated"):
        text += " (gated: accept its terms first)"
    elif model.get("license_note"):
        text += f" ({html.escape(str(model['license_note']))})"
    return text


def _code(text: str) -> str:
    """The daemon's `backticks` as code, the rest escaped."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


class ModelChoice(QDialog):
    """The screen; ``on_import`` opens the file picker (FirstRun's)."""

    def __init__(
        self, connection: DaemonConnection, parent: QWidget | None = None,
        endpoint: str | None = None, on_import: Callable[[QDialog], None] | None = None,
    ) -> None:  # fmt: skip
        """``endpoint``: the hub to pull from (None: the daemon's default, Hugging Face)."""
        super().__init__(parent)
        self.conn = connection
        self.endpoint = endpoint
        self.model: dict[str, Any] | None = None  # the recommended catalog entry
        self.network = NETWORK
        self.pull: Reply | None = None
        self.pulled: dict[str, Any] | None = None  # models.pull's result
        self.progress_seen = 0  # progress notifications received
        self._build(on_import)
        self.finished.connect(lambda _: self.cancel())
        reply = connection.call("models.catalog")
        reply.finished.connect(self.show_catalog)
        reply.failed.connect(lambda e: log.warning("models.catalog failed: %s", e.kind))

    def _build(self, on_import: Callable[[QDialog], None] | None) -> None:
        self.setWindowTitle("About Hearth's model")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(20, 18, 20, 16)
        layout.setSpacing(10)
        layout.setSizeConstraint(QVBoxLayout.SizeConstraint.SetFixedSize)
        head = QLabel(HEADLINE, self)
        emphasize(head, 1.5)
        intro = QLabel(INTRO, self)
        intro.setTextFormat(Qt.TextFormat.RichText)
        for label in (head, intro):
            label.setWordWrap(True)
            label.setFixedWidth(480)
            layout.addWidget(label)

        self.box = QFrame(self)  # the recommendation: hidden until the catalog answers
        self.box.setFrameShape(QFrame.Shape.StyledPanel)
        inner = QVBoxLayout(self.box)
        inner.setContentsMargins(14, 12, 14, 12)
        self.title = QLabel(self.box)
        emphasize(self.title, 0.5)
        self.details = QLabel(self.box)
        self.details.setTextFormat(Qt.TextFormat.RichText)
        self.details.setOpenExternalLinks(True)
        self.consent = QLabel(self.box)  # the only network call, audited
        self.consent.setTextFormat(Qt.TextFormat.RichText)
        self.progress = QProgressBar(self.box)
        self.progress.setRange(0, SCALE)
        self.progress.setAccessibleName("Download progress")
        self.status = QLabel(self.box)
        for label in (self.title, self.details, self.consent, self.status):
            label.setWordWrap(True)
            label.setFixedWidth(450)
            inner.addWidget(label)
        inner.insertWidget(3, self.progress)
        self.progress.hide()
        self.status.hide()
        self.box.hide()
        layout.addWidget(self.box)

        buttons = QDialogButtonBox(self)
        self.importing = QPushButton("Import a model file…", self)
        buttons.addButton(self.importing, QDialogButtonBox.ButtonRole.ActionRole)
        self.close_button = buttons.addButton("Got it", QDialogButtonBox.ButtonRole.RejectRole)
        self.download = QPushButton("Download", self)  # the primary action, on the right
        buttons.addButton(self.download, QDialogButtonBox.ButtonRole.AcceptRole)
        self.download.hide()
        self.close_button.setDefault(True)
        self.close_button.clicked.connect(self.accept)
        self.download.clicked.connect(self.start_pull)
        if on_import is not None:
            self.importing.clicked.connect(lambda: on_import(self))
        else:
            self.importing.hide()
        layout.addWidget(buttons)

    # -- the recommendation --------------------------------------------------------------

    def show_catalog(self, answer: dict[str, Any]) -> None:
        self.network = str(answer.get("network") or NETWORK)
        name = answer.get("recommended")
        model = next((m for m in answer.get("models", []) if m["name"] == name), None)
        if model is None:
            return  # an empty catalog: the intro alone
        download = model["download"]
        about = "about " if download.get("size_estimated") else ""
        self.title.setText(f"Recommended for this computer: {model['name']}")
        self.details.setText(
            f"<p>{html.escape(str(model['family']))} {html.escape(str(model['parameters']))}"
            f" — {html.escape(str(model.get('description') or ''))}</p>"
            f"<p><b>Download:</b> {about}{size(download['size_mb'])} · "
            f"<b>needs</b> {size(model['ram_mb'])} of memory · "
            f"<b>license:</b> {license_html(model)}<br>"
            f"<b>from</b> {html.escape(str(download['repo']))}, checksums verified</p>"
        )
        if model.get("installed"):  # offered again from the menu, but it is here
            self.consent.hide()
            self._say(f"Already downloaded, as {', '.join(model['installed'])}.")
            self.box.show()
            return
        self.model = model
        self.consent.setText(f"<p>{_code(self.network)}</p>")
        self.download.setText(f"Download ({about}{size(download['size_mb'])})")
        self.download.show()
        self.download.setDefault(True)
        self.close_button.setText("Keep the tiny model")
        self.close_button.setDefault(False)
        self.box.show()  # once its texts are set: the labels' heights follow them
        self._fit()

    # -- the download --------------------------------------------------------------------

    def start_pull(self) -> None:
        """The user agreed to this one download: pull it, with consent."""
        if self.model is None or (self.pull is not None and not self.pull.done):
            return
        params: dict[str, Any] = {"model": self.model["name"], "consent": True}
        if self.endpoint:
            params["endpoint"] = self.endpoint
        log.info("model download agreed: %s", self.model["name"])
        self.progress.setValue(0)
        self.progress.show()
        self._say("Starting the download…")
        self.download.setEnabled(False)
        self.close_button.setText("Cancel download")
        self.pull = self.conn.call("models.pull", params)
        self.pull.delta.connect(self._progress)
        self.pull.finished.connect(self._pulled)
        self.pull.failed.connect(self._pull_failed)
        self._fit()

    def cancel(self) -> None:
        """Closing the screen stops a download (the part fetched is kept: it resumes)."""
        if self.pull is not None and not self.pull.done:
            log.info("model download cancelled")
            self.pull.cancel()

    def _progress(self, params: dict[str, Any]) -> None:
        self.progress_seen += 1
        done, total = int(params.get("done") or 0), int(params.get("total") or 0)
        if total:
            self.progress.setValue(min(SCALE, done * SCALE // total))
        text = f"{size(done / 1e6)} of {size(total / 1e6)}" if total else size(done / 1e6)
        if int(params.get("files_total") or 0) > 1:  # an MLX folder: which file
            text += (f" · file {int(params.get('files_done') or 0) + 1} of "
                     f"{params['files_total']}: {params.get('file', '')}")  # fmt: skip
        self._say(text)

    def _pulled(self, info: dict[str, Any]) -> None:
        self.pulled = info
        self.progress.setValue(SCALE)
        log.info("model downloaded: %s", info.get("name"))
        done = f"{info['name']} is downloaded and verified."
        if info.get("default"):
            done += " It is now the default model for chat and rewrites."
        self._say(done)
        self.download.hide()
        self.close_button.setText("Done")
        self._fit()

    def _pull_failed(self, error: HearthError) -> None:
        log.warning("model download failed: %s", error.kind)
        self._say(error.message)
        self.download.setEnabled(True)
        self.download.setText("Try again")
        self.close_button.setText("Keep the tiny model")
        self._fit()

    def _say(self, text: str) -> None:
        self.status.setText(text)
        self.status.show()
        self._fit()

    def _fit(self) -> None:
        """Resize to the new texts now (a fixed-size layout, else buttons are clipped)."""
        layout = self.layout()
        if layout is not None:
            layout.activate()
