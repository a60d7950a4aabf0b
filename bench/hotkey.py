"""Hotkey press → text replaced, for a 40-word sentence, against the raw generation time.

On a real X display (Xvfb with trayer, the test suite's desktop helpers): `hearth tray`
(which starts its daemon, keep-alive pinned) and a small Qt app with a text field
(tests/gui/text_app.py). Each run selects the field's sentence, presses Ctrl+Alt+R with
xdotool, presses Enter as soon as the popup is up (it replaces once the rewrite is
done), and times the field's change (the app stamps it with the same monotonic clock).
The tray's log splits the run: capture, first words in the popup, generation, paste.

Overhead beyond generation = press → replaced, minus the daemon's own generation time
of the popup's request (its result's timings.total_ms): capture, the popup, the socket
round trips, the paste. Goal ≤ 150 ms. It is measured within each run, so it holds on a
busy machine. Also shown: the raw generation time of the same request (text, preset,
options) sent straight to the daemon by a client, with the KV cache in the same state
(the preset's prefix cached, not the text: each run first rewrites another sentence
with the same preset) — a separate request, so on a shared machine its time swings.

    .venv/bin/python bench/hotkey.py [--runs 5] [--preset proofread]

Timings on a machine other people are using are indicative only.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from daemon.client import Client
from tests.conftest import make_home
from tests.gui.desktop import TextApp, log_size, start_desktop, wait_log
from tests.gui.test_desktop_rewrite import Tray

GOAL_MS = 150
NAMES = ["Anna", "Bruno", "Chloe", "Dmitri", "Esther", "Farid", "Greta", "Hiro", "Ines", "Jonas"]
# 40 words, a few mistakes to mend
SENTENCE = (
    "Dear {name}, i wanted to let you know that the meeting on thursday have been moved "
    "to next week because several people in the team was travelling, so please check "
    "you calendar and tell me if the new time work."
)
OTHER = "Please send me the report before the end of the day, thank you very much."
OPTIONS = {"temperature": 0}


def raw_ms(client: Client, text: str, preset: str) -> tuple[float, dict[str, object]]:
    """The same rewrite sent straight to the daemon: wall time, and its result."""
    client.call("rewrite", {"text": OTHER, "preset": preset, "options": OPTIONS})  # prefix only
    start = time.monotonic()
    result = client.call("rewrite", {"text": text, "preset": preset, "options": OPTIONS})
    return (time.monotonic() - start) * 1000, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--preset", default="proofread")
    args = parser.parse_args()
    words = len(SENTENCE.format(name="Anna").split())
    assert words == 40, words

    desk = start_desktop()
    home = make_home(f'keep_alive = -1\n[hotkeys]\n"rewrite:{args.preset}" = "Ctrl+Alt+P"\n')
    (home / "data").mkdir(mode=0o700)
    (home / "data" / "tray.json").write_text(json.dumps({"seen_model_intro": True}))
    tray = Tray(desk, home)
    tray.start()
    rows = []
    try:
        wait_log(tray.log, r"rewrite: warmed", timeout=300)
        for run in range(args.runs):
            text = SENTENCE.format(name=NAMES[run % len(NAMES)])
            with Client.connect(tray.paths.socket) as client:
                raw, result = raw_ms(client, text, args.preset)
                client.call("rewrite", {"text": OTHER, "preset": args.preset, "options": OPTIONS})
            app = TextApp(desk, text)
            try:
                app.select_all()
                mark = log_size(tray.log)
                pressed = time.monotonic()
                desk.xdotool("key", "ctrl+alt+p")  # the preset's own hotkey
                got = wait_log(tray.log, r"rewrite: triggered \(monotonic ([\d.]+)\)", mark)
                wait_log(tray.log, r"rewrite: popup shown", mark, timeout=60)
                desk.xdotool("key", "Return")  # replace as soon as it is written
                replaced, at = app.wait_text(timeout=600)
                total = (at - pressed) * 1000
                line = wait_log(tray.log, r"rewrite: replaced after .*\((.*)\)", mark).group(1)
            finally:
                app.close()
            parts = {k: float(v) for k, v in re.findall(r"(\w+) (\d+) ms", line)}
            assert replaced == result["text"], "the field does not hold the model's rewrite"
            key = (float(got.group(1)) - pressed) * 1000  # xdotool's start, the X server
            rows.append({"total": total, "raw": raw, "key": key, **parts})
            beyond = total - parts["daemon_total"]
            print(
                f"run {run + 1}: press→replaced {total:.0f} ms = daemon's generation "
                f"{parts['daemon_total']:.0f} + {beyond:.0f} ms (of which the key reached the "
                f"tray after {key:.0f}) | capture {parts['capture']:.0f}"
                f", first words {parts.get('first_token', 0):.0f} (daemon ttft "
                f"{parts.get('daemon_ttft', 0):.0f}), generation seen by the popup "
                f"{parts['generation']:.0f}, paste {parts['paste']:.0f} (clipboard back at "
                f"{parts['restore']:.0f}) | raw request {raw:.0f} ms",
                flush=True,
            )
    finally:
        tray.stop()
        desk.stop()
        shutil.rmtree(home, ignore_errors=True)

    def med(key: str) -> float:
        return statistics.median(r[key] for r in rows)

    beyond = statistics.median(r["total"] - r["daemon_total"] for r in rows)
    versus_raw = statistics.median(r["total"] - r["raw"] for r in rows)
    from_tray = statistics.median(r["total"] - r["key"] - r["daemon_total"] for r in rows)
    print(f"\n{args.runs} runs, preset {args.preset}, a {words}-word sentence, medians:")
    print("| press → replaced | daemon's generation | beyond it | key → tray | capture "
          "| first words | daemon ttft | paste | raw request |")  # fmt: skip
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    cells = [med("total"), med("daemon_total"), beyond, med("key"), med("capture"),
             med("first_token"), med("daemon_ttft"), med("paste"), med("raw")]  # fmt: skip
    print("| " + " | ".join(f"{c:.0f} ms" for c in cells) + " |")
    print(
        f"overhead beyond generation: {beyond:.0f} ms (goal ≤ {GOAL_MS} ms; {from_tray:.0f} ms "
        f"once the key reached the tray); against a "
        f"separate raw request: {versus_raw:+.0f} ms (noisy where the machine is shared)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
