"""Settings ▸ Rewrite presets: the built-in presets (read-only) and the user's own.

Changes go to the daemon (`rewrite.presets.add/update/remove`), which keeps them in
config.toml; the list shows what it answers, so it is always what is in effect.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from gui.connection import Reply

Call = Callable[[str, dict[str, Any]], Reply]


class PresetDialog(QDialog):
    """Name and instruction of one preset of the user's own."""

    def __init__(self, parent: QWidget, name: str = "", instruction: str = "") -> None:
        super().__init__(parent)
        self.setWindowTitle("Edit preset" if name else "New preset")
        form = QFormLayout(self)
        self.name = QLineEdit(name, self)
        self.name.setAccessibleName("Preset name")
        self.name.setPlaceholderText("e.g. pirate")
        self.instruction = QPlainTextEdit(instruction, self)
        self.instruction.setAccessibleName("Instruction")
        self.instruction.setPlaceholderText("e.g. Rewrite this text as a pirate would say it.")
        self.instruction.setMinimumSize(380, 100)
        form.addRow("Name", self.name)
        form.addRow("Instruction", self.instruction)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel, self
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)


class PresetsTab(QWidget):
    def __init__(self, call: Call, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.call = call  # the settings window's: it counts and reports each request
        self.presets: list[dict[str, Any]] = []
        self.preset_dialog: PresetDialog | None = None
        layout = QVBoxLayout(self)
        intro = QLabel("Built-in presets are shown in grey; add your own for the rewrite menu.")
        intro.setWordWrap(True)
        self.preset_list = QListWidget(self)
        self.preset_list.setAccessibleName("Rewrite presets")
        row = QHBoxLayout()
        self.add_preset_button = QPushButton("Add…", self)
        self.edit_preset_button = QPushButton("Edit…", self)
        self.remove_preset_button = QPushButton("Remove", self)
        for button, name in ((self.add_preset_button, "Add a preset"),
                             (self.edit_preset_button, "Edit the preset"),
                             (self.remove_preset_button, "Remove the preset")):  # fmt: skip
            button.setAccessibleName(name)
            row.addWidget(button)
        row.addStretch(1)
        layout.addWidget(intro)
        layout.addWidget(self.preset_list, 1)
        layout.addLayout(row)
        self.add_preset_button.clicked.connect(lambda: self._edit_preset(None))
        self.edit_preset_button.clicked.connect(lambda: self._edit_preset(self._chosen_preset()))
        self.preset_list.itemDoubleClicked.connect(
            lambda _: self._edit_preset(self._chosen_preset())
        )
        self.remove_preset_button.clicked.connect(self._remove_preset)
        self.preset_list.currentItemChanged.connect(lambda *_: self._preset_buttons())

    def show_presets(self, result: dict[str, Any]) -> None:
        self.presets = result["presets"]
        chosen = self._chosen_preset()
        self.preset_list.clear()
        for preset in self.presets:
            builtin = preset.get("source") == "builtin"
            item = QListWidgetItem(f"{preset['name']} — {preset['instruction']}")
            item.setData(Qt.ItemDataRole.UserRole, preset["name"])
            if builtin:
                item.setForeground(self.palette().color(self.palette().ColorRole.PlaceholderText))
                item.setToolTip("Built in: cannot be edited")
            self.preset_list.addItem(item)
            if chosen and preset["name"] == chosen["name"]:
                self.preset_list.setCurrentItem(item)
        self._preset_buttons()

    def _chosen_preset(self) -> dict[str, Any] | None:
        item = self.preset_list.currentItem()
        if item is None:
            return None
        name = item.data(Qt.ItemDataRole.UserRole)
        return next((p for p in self.presets if p["name"] == name), None)

    def _preset_buttons(self) -> None:
        chosen = self._chosen_preset()
        mine = chosen is not None and chosen.get("source") != "builtin"
        self.edit_preset_button.setEnabled(mine)
        self.remove_preset_button.setEnabled(mine)

    def _edit_preset(self, preset: dict[str, Any] | None) -> None:
        if preset is not None and preset.get("source") == "builtin":
            return
        name = preset["name"] if preset else ""
        dialog = PresetDialog(self, name, preset["instruction"] if preset else "")

        def save() -> None:
            new_name = dialog.name.text().strip()
            instruction = dialog.instruction.toPlainText().strip()
            if preset is None:
                params = {"name": new_name, "instruction": instruction}
                reply = self.call("rewrite.presets.add", params)
            else:
                params = {"name": name, "new_name": new_name, "instruction": instruction}
                reply = self.call("rewrite.presets.update", params)
            reply.finished.connect(self.show_presets)

        dialog.accepted.connect(save)
        self.preset_dialog = dialog
        dialog.open()

    def _remove_preset(self) -> None:
        chosen = self._chosen_preset()
        if chosen is None or chosen.get("source") == "builtin":
            return
        reply = self.call("rewrite.presets.remove", {"name": chosen["name"]})
        reply.finished.connect(self.show_presets)
