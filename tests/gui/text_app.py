"""A small application with a text field, for the hotkey tests: "any application".

    python text_app.py "The sentence." [--clipboard TEXT]

A QPlainTextEdit (a mail draft, say) holding the sentence, at a known place on the
screen. With --clipboard, it first puts TEXT on the clipboard as plain text and as HTML
(two formats, so a test can check both come back). Each change of the field is printed
as a JSON line with the time it happened, so a test (or bench/hotkey.py) reads exactly
what the field holds and when.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from PySide6.QtCore import QMimeData
from PySide6.QtWidgets import QApplication, QPlainTextEdit

GEOMETRY = (80, 80, 640, 220)  # x, y, width, height: tests point and click inside it


def say(event: str, **fields: object) -> None:
    print(json.dumps({"event": event, "t": time.monotonic(), **fields}), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("text")
    parser.add_argument("--clipboard")
    args = parser.parse_args()
    app = QApplication(["text-app", "-platform", "xcb"])
    field = QPlainTextEdit()
    field.setWindowTitle("Hearth test field")
    field.setPlainText(args.text)
    field.setGeometry(*GEOMETRY)
    field.textChanged.connect(lambda: say("text", text=field.toPlainText()))
    if args.clipboard is not None:
        data = QMimeData()
        data.setText(args.clipboard)
        data.setHtml(f"<p><b>{args.clipboard}</b></p>")
        app.clipboard().setMimeData(data)
    field.show()
    say("ready", text=field.toPlainText())
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
