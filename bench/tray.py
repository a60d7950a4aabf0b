"""The tray process's memory: idle (icon shown, connected, nothing open), then with the
chat window open.

Starts `hearth tray` (which starts its daemon) on a temporary HEARTH_HOME, on a real X
display: Xvfb with trayer as the tray host (the test suite's desktop helpers), waits
until it is connected and idle, and samples its RSS and PSS (/proc/PID/smaps_rollup)
for a while. Then clicks the icon, as a person would, and samples again with the chat
window open. Goal: ≤ 120 MB RSS idle.

    .venv/bin/python bench/tray.py [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.gui.desktop import Desktop, flame_pixels, start_desktop

GOAL_MB = 120


def memory_kb(pid: int) -> dict[str, int]:
    """RSS and PSS of ``pid`` in kB (PSS splits shared pages among their users)."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("Rss", "Pss"):
            out[key.lower()] = int(rest.split()[0])
    return out


def report(what: str, pid: int, seconds: float) -> float:
    samples = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        samples.append(memory_kb(pid))
        time.sleep(0.5)
    rss = max(s["rss"] for s in samples) / 1024
    pss = max(s["pss"] for s in samples) / 1024
    print(
        f"{what}: RSS {rss:.1f} MB, PSS {pss:.1f} MB "
        f"(max of {len(samples)} samples over {seconds:g} s)"
    )
    return rss


def wait_for(path: Path, text: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text():
            return
        time.sleep(0.1)
    raise SystemExit(f"timed out waiting for {text!r} in {path}")


def click_icon(desk: Desktop, home: Path) -> None:
    """Left-click the flame in the tray area: it opens the chat window."""
    shot = desk.screenshot(home / "screen.png")
    w, h = shot.width(), shot.height()
    flame = flame_pixels(shot, w - 300, h - 40, w, h)
    if not flame:
        raise SystemExit("no tray icon on the screen")
    x = sum(p[0] for p in flame) // len(flame)
    y = sum(p[1] for p in flame) // len(flame)
    desk.xdotool("mousemove", str(x), str(y), "click", "1")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10, help="time to sample each state")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="hb-", dir="/tmp"))
    (home / "data").mkdir(mode=0o700)
    answered = {"seen_model_intro": True, "declined_history": True}  # no first-run dialog
    (home / "data" / "tray.json").write_text(json.dumps(answered))
    desk = start_desktop()
    env = {**desk.env, "HEARTH_HOME": str(home)}
    env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"  # no keychain prompts
    tray = subprocess.Popen([sys.executable, "-m", "daemon", "tray"], env=env)
    try:
        log = home / "logs" / "tray.log"
        wait_for(log, "connected to the daemon")
        time.sleep(2)  # the menu's first refresh, then nothing
        idle = report("tray idle (Xvfb + trayer)", tray.pid, args.seconds)
        click_icon(desk, home)
        wait_for(log, "chat window shown")
        time.sleep(2)
        report("with the chat window open", tray.pid, args.seconds)
        verdict = "within" if idle <= GOAL_MB else "OVER"
        print(f"idle RSS {idle:.1f} MB: {verdict} the goal of {GOAL_MB} MB")
        return 0
    finally:
        tray.send_signal(signal.SIGTERM)
        tray.wait(30)
        subprocess.run([sys.executable, "-m", "daemon", "down"], env=env,
                       stdout=subprocess.DEVNULL)  # fmt: skip
        desk.stop()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
