"""The tray process's memory while idle: icon shown, connected, nothing open.

Starts a daemon on a temporary HEARTH_HOME, then `hearth tray` on a real X display
(Xvfb with trayer as the tray host, when they are installed; else Qt's offscreen
platform, which has no tray and opens the chat window instead), waits until it is
connected and idle, and samples its RSS and PSS (/proc/PID/smaps_rollup) for a while.
Then opens nothing more: the figure is what Hearth costs a desktop all day.
Goal: ≤ 120 MB RSS.

    .venv/bin/python bench/tray.py [--seconds 10]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL_MB = 120


def memory_kb(pid: int) -> dict[str, int]:
    """RSS and PSS of ``pid`` in kB (PSS splits shared pages among their users)."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("Rss", "Pss"):
            out[key.lower()] = int(rest.split()[0])
    return out


def start_display() -> tuple[dict[str, str], list[subprocess.Popen[bytes]]]:
    env = {k: v for k, v in os.environ.items() if k != "QT_QPA_PLATFORM"}
    if not (shutil.which("Xvfb") and shutil.which("trayer")):
        env["QT_QPA_PLATFORM"] = "offscreen"
        return env, []
    read, write = os.pipe()
    xvfb = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write), "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
        pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    os.close(write)
    with os.fdopen(read) as pipe:
        env["DISPLAY"] = ":" + pipe.readline().strip()
    trayer = subprocess.Popen(
        ["trayer", "--edge", "bottom", "--align", "right", "--height", "32"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(1.0)  # trayer claims the tray selection; the tray waits for it anyway
    return env, [xvfb, trayer]


def wait_for(path: Path, text: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text():
            return
        time.sleep(0.1)
    raise SystemExit(f"timed out waiting for {text!r} in {path}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10, help="idle time to sample")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="hb-", dir="/tmp"))
    (home / "data").mkdir(mode=0o700)
    # the first-run questions answered, so nothing but the icon is up
    (home / "data" / "tray.json").write_text('{"seen_model_intro": true, "declined_history": true}')
    env, display = start_display()
    env.update(HEARTH_HOME=str(home), PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring")
    tray = None
    try:
        subprocess.run([sys.executable, "-m", "daemon", "up"], env=env, check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
        tray = subprocess.Popen([sys.executable, "-m", "daemon", "tray"], env=env)
        log = home / "logs" / "tray.log"
        wait_for(log, "connected to the daemon")
        time.sleep(2)  # the first refresh of the menu's data, then nothing
        samples = []
        deadline = time.monotonic() + args.seconds
        while time.monotonic() < deadline:
            samples.append(memory_kb(tray.pid))
            time.sleep(0.5)
        rss = max(s["rss"] for s in samples) / 1024
        pss = max(s["pss"] for s in samples) / 1024
        platform = "xcb (Xvfb + trayer)" if display else "offscreen"
        print(
            f"tray idle on {platform}: RSS {rss:.1f} MB, PSS {pss:.1f} MB (max of "
            f"{len(samples)} samples over {args.seconds:g} s; goal ≤ {GOAL_MB} MB RSS)"
        )
        return 0
    finally:
        if tray is not None:
            tray.send_signal(signal.SIGTERM)
            tray.wait(30)
        subprocess.run([sys.executable, "-m", "daemon", "down"], env=env,
                       stdout=subprocess.DEVNULL)  # fmt: skip
        for proc in reversed(display):
            proc.terminate()
            proc.wait(10)
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
