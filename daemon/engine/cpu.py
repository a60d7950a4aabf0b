"""How many threads a runner should compute with: the CPUs that are actually free.

llama.cpp splits every operation of a token across its threads, and they meet at a
barrier after each one (hundreds per token). When another program takes one of the
cores, the thread that shares it runs only part of the time and every barrier waits for
it: on 2 cores beside one busy process, 2 threads made 0.3 to 40 tokens/s where 1 thread
makes 57. So the runner measures what the rest of the machine uses and computes with the
cores left over, re-checked while it generates (``llama_set_n_threads``: no reload).

What "the rest" uses comes from /proc/stat (busy time of the CPUs this process may run
on) minus this process's own CPU time, over the last two SAMPLE_S intervals (the larger
of the two: a new load is seen within one interval, a finished one after two). PSI
(/proc/pressure/cpu) says that tasks wait, not how many cores are taken; the load
average lags by a minute. Elsewhere (macOS, Windows) no sampling is done and every
usable CPU is used.

Threads also get a priority here: background work (plugin jobs, scheduled tasks) runs on
a thread of its own at nice 19, so the user's programs come first.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

SAMPLE_S = 0.25  # seconds between samples: cheap (two small reads), fast enough to follow
KEEP_FREE = 0.5  # a CPU counts as free when others use less than half of it
STAT = Path("/proc/stat")

Sample = tuple[float, float, float]  # (wall s, busy s of our CPUs, our own CPU s)


def usable_cpus() -> int:
    """CPUs this process may run on (affinity, e.g. taskset or a container's cpuset)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def threads_for(cpus: int, others: float) -> int:
    """Threads to use when other programs keep ``others`` CPUs busy (at least 1)."""
    return max(1, min(cpus, int(cpus - others + KEEP_FREE)))


def read_busy(stat: Path = STAT, cpus: set[int] | None = None) -> float | None:
    """Seconds the given CPUs (default: ours) have been busy since boot; None without
    /proc/stat. Busy is everything but idle and iowait."""
    try:
        lines = stat.read_text().splitlines()
    except OSError:
        return None
    mine = cpus if cpus is not None else set(os.sched_getaffinity(0))
    hz = os.sysconf("SC_CLK_TCK")
    busy = 0
    for line in lines:
        name, _, rest = line.partition(" ")
        if not name.startswith("cpu") or name == "cpu" or int(name[3:]) not in mine:
            continue
        fields = [int(x) for x in rest.split()]
        busy += sum(fields[:8]) - fields[3] - fields[4]  # user…steal, less idle and iowait
    return busy / hz


class CpuShare:
    """The number of threads to use now, kept up to date by a sampling thread."""

    def __init__(
        self,
        cpus: int | None = None,
        busy: Callable[[], float | None] = read_busy,
        own: Callable[[], float] = time.process_time,
    ) -> None:
        self.cpus = cpus or usable_cpus()
        self._busy = busy
        self._own = own
        self.others = 0.0  # CPUs other programs used lately
        self._threads = self.cpus
        self._last: Sample | None = self._sample()
        self._previous_others = 0.0
        self._stop = threading.Event()

    def threads(self) -> int:
        return self._threads

    def start(self) -> CpuShare:
        """Sample in a daemon thread (only where /proc/stat can be read)."""
        if self._last is not None:
            threading.Thread(target=self._run, name="cpu-share", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def update(self) -> int:
        """Take a sample; the thread count for the CPU others used since the last one."""
        now = self._sample()
        if now is None or self._last is None:
            return self._threads
        wall = now[0] - self._last[0]
        if wall <= 0:
            return self._threads
        others = max(0.0, (now[1] - self._last[1]) - (now[2] - self._last[2])) / wall
        self._last = now
        self.others = max(others, self._previous_others)  # up at once, down after two
        self._previous_others = others
        self._threads = threads_for(self.cpus, self.others)
        return self._threads

    def _sample(self) -> Sample | None:
        busy = self._busy()
        return None if busy is None else (time.monotonic(), busy, self._own())

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            try:
                self.update()
            except (OSError, ValueError):  # /proc changed shape: keep the last choice
                log.debug("cpu sampling failed", exc_info=True)


PRIORITIES = ("interactive", "background")


BACKGROUND_NICE = 19


def lower_this_thread(nice: int = BACKGROUND_NICE) -> bool:
    """Give the calling thread, and the threads it starts later (llama.cpp's OpenMP
    team inherits it), the lowest priority: nice 19 (config.toml's ``background_nice``
    may ask for less). Linux only, where nice is per thread
    (elsewhere it is per process, and lowering the whole runner would slow the user's own
    requests); False if not done.

    Nice 19, not SCHED_IDLE: beside one busy nice-0 program it still gets ~1.5 % of a
    core, so a background job finishes on a machine that is never idle, where SCHED_IDLE
    (~0.3 %) starved it for minutes. An unprivileged thread cannot be raised back, which
    is why background work gets a thread of its own rather than lowering the one that
    serves the user."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    except OSError:
        return False
    return True


def omp_environment(environ: dict[str, str] | os._Environ[str]) -> None:
    """Limit how long llama.cpp's OpenMP threads spin at a barrier before they sleep.

    libgomp spins 300,000 times by default: 2.8 ms on this project's test machine (9 ns
    a ``pause``), several times more on CPUs with a slower ``pause``, burnt on a core
    another program needs while the thread being waited for sits descheduled. 10,000
    spins (~0.1 ms there) still cover the microsecond waits of an idle machine. Must be
    set before libgomp loads; a user's own setting wins."""
    if "OMP_WAIT_POLICY" not in environ and "GOMP_SPINCOUNT" not in environ:
        environ["GOMP_SPINCOUNT"] = str(SPIN_COUNT)


SPIN_COUNT = 10000
