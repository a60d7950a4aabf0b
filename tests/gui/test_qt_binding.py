"""The Qt binding itself: PySide6 6.12.0 decremented the refcount of every bool sent
through a signal, and Python aborted at exit ("bool_dealloc"). Keep that version out."""

from __future__ import annotations

import os
import subprocess
import sys

SCRIPT = """
import gc
from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QApplication, QCheckBox
app = QApplication([])
class O(QObject):
    s = Signal(bool)
o = O()
o.s.connect(lambda b: None)
box = QCheckBox()
box.toggled.connect(lambda b: None)
for i in range(5000):
    o.s.emit(i % 2 == 0)
    box.setChecked(i % 2 == 0)
gc.collect()
print("clean")
"""


def test_bools_through_signals_do_not_corrupt_the_interpreter() -> None:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and "clean" in done.stdout, done.stderr[-2000:]
