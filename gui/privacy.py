"""The privacy panel: every call that left (or tried to leave) this computer, checkable.

The audit log as a filterable table, a Verify button for the hash chain and its
signed checkpoints, and the offline switch. Calm on purpose: an empty log is the
normal, good case, and it says so.
"""

from __future__ import annotations

import time
from typing import Any

from PySide6.QtCore import QEvent, QSortFilterProxyModel, Qt
from PySide6.QtGui import QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QStackedWidget,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from daemon.errors import HearthError
from gui import icons
from gui.connection import DaemonConnection
from gui.widgets import Banner, Tone, emphasize, follow_palette, human_bytes

COLUMNS = ["When", "What", "Where", "Data", "Result"]
KINDS = [("Everything", "all"), ("Sent or received data", "data"), ("Refused", "refused")]


ERRORS = {  # the gateway's error classes, for people
    "ConnectError": "could not connect",
    "ConnectTimeout": "timed out connecting",
    "ReadTimeout": "timed out",
    "RemoteProtocolError": "the server broke off",
    "IntegrityError": "download did not match its checksum",
}


def rows(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per outbound call, newest first.

    Every call ends in an ``outcome`` entry that repeats the decision (allow or deny);
    its ``intent`` entry says why it was made. A connection the socket guard stopped is
    a ``blocked`` entry. Unknown fields are ignored and unknown phases skipped: the log
    may grow."""
    intents = {e.get("seq"): e for e in entries if e.get("phase") == "intent"}
    out = []
    for e in entries:
        phase = e.get("phase")
        intent = intents.get(e.get("intent")) or {}
        if phase == "outcome" and e.get("decision", intent.get("decision")) == "allow":
            status, error = e.get("status"), e.get("error")
            if error:
                result = f"Allowed · failed: {ERRORS.get(error, error)}"
            else:
                result = f"Allowed · HTTP {status}" if status else "Allowed"
            kind = "data"
        elif phase == "outcome":
            result, kind = "Refused by your network setting", "refused"
        elif phase == "blocked":
            result, kind = "Blocked: tried to bypass Hearth's gateway", "refused"
        else:
            continue
        host = e.get("host") or "?"
        port = e.get("port")
        what = e.get("caller") or "?"
        purpose = e.get("purpose") or intent.get("purpose")
        if purpose:
            what = f"{what}: {purpose}"
        up, down = e.get("bytes_up") or 0, e.get("bytes_down") or 0
        out.append({
            "time": float(e.get("time") or 0),
            "what": what,
            "where": f"{host}:{port}" if port else host,
            "data": f"↑ {human_bytes(up)}  ↓ {human_bytes(down)}" if kind == "data" else "—",
            "result": result,
            "kind": kind,
            "up": up,
            "down": down,
        })  # fmt: skip
    out.sort(key=lambda r: float(r["time"]), reverse=True)
    return out


class KindFilter(QSortFilterProxyModel):
    """Text filter over every column, plus the kind chosen in the combo box."""

    kind = "all"

    def filterAcceptsRow(self, row: int, parent: Any) -> bool:
        model = self.sourceModel()
        if self.kind != "all":
            kind = model.index(row, 0, parent).data(Qt.ItemDataRole.UserRole)
            if kind != self.kind:
                return False
        pattern = self.filterRegularExpression()
        if not pattern.pattern():
            return True
        return any(
            pattern.match(str(model.index(row, c, parent).data() or "")).hasMatch()
            for c in range(model.columnCount())
        )


class PrivacyWindow(QWidget):
    def __init__(self, connection: DaemonConnection, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.conn = connection
        self.setWindowTitle("Hearth · Privacy")
        self.setWindowIcon(icons.app_icon())
        self.resize(860, 520)
        self.loading = 0
        self.verify_result: dict[str, Any] | None = None
        self._build()
        self.conn.connected.connect(lambda _: self.refresh())
        self.refresh()

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        follow_palette(self, event)

    def _build(self) -> None:
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 16, 16, 16)
        head = QHBoxLayout()
        self.headline = QLabel(self)
        self.headline.setObjectName("headline")
        emphasize(self.headline, 3)
        self.headline.setWordWrap(True)
        self.offline = QCheckBox("Offline mode", self)
        self.offline.setAccessibleName("Offline mode")
        self.offline.setToolTip("Offline: Hearth refuses every outbound connection")
        head.addWidget(self.headline, 1)
        head.addWidget(self.offline)
        layout.addLayout(head)
        self.summary = QLabel(self)
        self.summary.setWordWrap(True)
        layout.addWidget(self.summary)
        self.banner = Banner(self)
        layout.addWidget(self.banner)
        bar = QHBoxLayout()
        self.filter = QLineEdit(self)
        self.filter.setPlaceholderText("Filter by host, purpose or result")
        self.filter.setAccessibleName("Filter the audit log")
        self.filter.setClearButtonEnabled(True)
        self.kind = QComboBox(self)
        self.kind.setAccessibleName("Show")
        for label, value in KINDS:
            self.kind.addItem(label, value)
        self.refresh_button = QPushButton("Refresh", self)
        self.verify_button = QPushButton("Verify the log", self)
        self.verify_button.setAccessibleName("Verify the audit log")
        self.verify_button.setToolTip(
            "Check the log's hash chain and signed checkpoints: any edit, deletion or "
            "truncation shows"
        )
        bar.addWidget(self.filter, 1)
        bar.addWidget(self.kind)
        bar.addWidget(self.refresh_button)
        bar.addWidget(self.verify_button)
        layout.addLayout(bar)
        self.model = QStandardItemModel(0, len(COLUMNS), self)
        self.model.setHorizontalHeaderLabels(COLUMNS)
        self.proxy = KindFilter(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.table = QTableView(self)
        self.table.setModel(self.proxy)
        self.table.setAccessibleName("Audit log")
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().hide()
        self.table.setWordWrap(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.empty = QLabel(
            "<h3>Nothing has left this computer.</h3><p>Hearth is offline unless you allow "
            "a host. When something does go out — a model download, a remote model — each "
            "call is listed here: what, where, when and how much.</p>",
            self,
        )
        self.empty.setWordWrap(True)
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.stack = QStackedWidget(self)
        self.stack.addWidget(self.empty)
        self.stack.addWidget(self.table)
        layout.addWidget(self.stack, 1)
        self.verdict = QLabel(self)
        self.verdict.setWordWrap(True)
        self.verdict.setAccessibleName("Verification result")
        self.verdict.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.verdict)
        self.filter.textChanged.connect(self.proxy.setFilterFixedString)
        self.kind.currentIndexChanged.connect(self._kind_changed)
        self.refresh_button.clicked.connect(self.refresh)
        self.verify_button.clicked.connect(self.verify)
        self.offline.clicked.connect(self._set_offline)

    # -- data ----------------------------------------------------------------------------

    def refresh(self) -> None:
        self._load("net.status", {}, self._show_status)
        self._load("audit.list", {"limit": 1000}, self._show_entries)

    def _load(self, method: str, params: dict[str, Any], done: Any) -> None:
        self.loading += 1
        reply = self.conn.call(method, params)

        def finished(result: dict[str, Any]) -> None:
            self.loading -= 1
            done(result)

        def failed(error: HearthError) -> None:
            self.loading -= 1
            self.banner.show_message(error.message, Tone.ERROR)

        reply.finished.connect(finished)
        reply.failed.connect(failed)

    def _show_status(self, status: dict[str, Any]) -> None:
        mode = status.get("mode", "offline")
        self.offline.setChecked(mode == "offline")
        if mode == "offline":
            self.headline.setText("Offline: nothing leaves this computer.")
        elif mode == "allow-listed":
            hosts = ", ".join(r["host"] for r in status.get("rules", [])) or "no host yet"
            self.headline.setText(f"Online only for the hosts you allowed: {hosts}.")
        else:
            self.headline.setText("Hearth asks before anything goes out.")
        blocked = status.get("blocked") or 0
        if blocked:
            self.banner.show_message(
                f"Since Hearth started, {blocked} connection(s) that did not go through its "
                "gateway were stopped before they left. They are listed below.",
                Tone.WARNING,
            )

    def _show_entries(self, result: dict[str, Any]) -> None:
        self.model.removeRows(0, self.model.rowCount())
        found = rows(result.get("entries", []))
        for row in found:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row["time"]))
            items = [QStandardItem(v) for v in (stamp, row["what"], row["where"], row["data"],
                                                  row["result"])]  # fmt: skip
            items[0].setData(row["kind"], Qt.ItemDataRole.UserRole)
            items[1].setToolTip(row["what"])
            self.model.appendRow(items)
        made = [r for r in found if r["kind"] == "data"]
        up, down = sum(r["up"] for r in made), sum(r["down"] for r in made)
        refused = len(found) - len(made)
        self.summary.setText(
            f"{_count(len(made), 'call')} went out ({human_bytes(up)} sent, "
            f"{human_bytes(down)} received); {_count(refused, 'was', 'were')} refused."
            if found
            else "No outbound call has been made or attempted."
        )
        self.stack.setCurrentWidget(self.table if found else self.empty)

    def _kind_changed(self) -> None:
        self.proxy.kind = str(self.kind.currentData())
        self.proxy.invalidate()

    def show_kind(self, kind: str) -> None:
        self.kind.setCurrentIndex(max(0, self.kind.findData(kind)))

    def _set_offline(self, offline: bool) -> None:
        mode = "offline" if offline else "allow-listed"
        self._load("net.set_mode", {"mode": mode}, self._show_status)

    def verify(self) -> None:
        self.verify_button.setEnabled(False)
        self.verdict.setText("Checking…")
        self._load("audit.verify", {}, self._show_verdict)

    def _show_verdict(self, result: dict[str, Any]) -> None:
        self.verify_button.setEnabled(True)
        self.verify_result = result
        entries, checkpoints = result.get("entries", 0), result.get("checkpoints", 0)
        if result.get("ok"):
            ms = result.get("duration_ms")
            took = f", checked in {ms:.0f} ms" if isinstance(ms, int | float) else ""
            self.verdict.setText(
                f"✓ The log is intact: {_count(entries, 'entry', 'entries')}, "
                f"{_count(checkpoints, 'signed checkpoint')}{took}. Nothing was edited, "
                "removed or reordered."
            )
            self.verdict.setStyleSheet("")
        elif result.get("problem") == "unavailable":
            self.verdict.setText(
                f"The log could not be checked right now: {result.get('detail') or ''}"
            )
        else:
            self.verdict.setText(
                "The log does not check out: "
                f"{result.get('summary') or result.get('problem')}. Your conversations are "
                "not affected; this means the record of network calls was changed or damaged "
                "after it was written."
            )
            self.verdict.setStyleSheet("color: #D9534F;")


def _count(n: int, one: str, many: str | None = None) -> str:
    """'1 call', '3 calls'; '1 was', '2 were'."""
    return f"{n} {one if n == 1 else (many or one + 's')}"
