"""A pids cgroup per plugin process: the process limit that also holds for root.

RLIMIT_NPROC is not enforced for root (nor for CAP_SYS_RESOURCE), and outside a user
namespace it counts every process of the user. A cgroup's ``pids.max`` counts exactly
the plugin's processes and threads, for any uid; ``pids.events`` says when it was hit;
and every member can be killed at once. Used when the daemon may create cgroups (a
root daemon, or a delegated cgroup v2 subtree); otherwise the plugin sandbox falls
back to RLIMIT_NPROC in a user namespace (see sandbox.py).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path


def _mounts() -> list[tuple[str, str, list[str]]]:
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        parts = line.split()
        if len(parts) >= 4:
            out.append((parts[1], parts[2], parts[3].split(",")))
    return out


def _own_cgroup(controller: str | None) -> str | None:
    """This process's cgroup path in the v1 hierarchy of ``controller`` (None: v2)."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, names, path = line.split(":", 2)
        if (controller is None and names == "") or (controller in names.split(",")):
            return path
    return None


def _base() -> Path | None:
    """A directory under which we may create pids-limited cgroups, or None."""
    for mountpoint, fstype, options in _mounts():
        if fstype == "cgroup" and "pids" in options:
            own = _own_cgroup("pids")
            if own is not None:
                _sweep(Path(mountpoint) / own.lstrip("/"))
                base = Path(mountpoint) / own.lstrip("/") / f"hearth-{os.getpid()}"
                with contextlib.suppress(OSError):
                    base.mkdir(exist_ok=True)
                    return base
    for mountpoint, fstype, _ in _mounts():
        if fstype == "cgroup2":
            own = _own_cgroup(None)
            if own is None:
                continue
            parent = Path(mountpoint) / own.lstrip("/")
            with contextlib.suppress(OSError):
                if "pids" not in (parent / "cgroup.controllers").read_text().split():
                    continue
                (parent / "cgroup.subtree_control").write_text("+pids")  # EBUSY if not allowed
                base = parent / f"hearth-{os.getpid()}"
                base.mkdir(exist_ok=True)
                (base / "cgroup.subtree_control").write_text("+pids")
                return base
    return None


def _sweep(parent: Path) -> None:
    """Remove the empty groups of daemons that died without cleaning up (kill -9)."""
    with contextlib.suppress(OSError):
        for group in parent.glob("hearth-*"):
            pid = group.name.removeprefix("hearth-")
            if pid.isdigit() and not Path(f"/proc/{pid}").exists():
                for child in group.iterdir():
                    if child.is_dir():
                        with contextlib.suppress(OSError):
                            child.rmdir()
                with contextlib.suppress(OSError):
                    group.rmdir()


class PidsCgroup:
    """One plugin process's cgroup; :meth:`create` returns None where there can be none."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def create(cls, name: str, limit: int) -> PidsCgroup | None:
        base = _base()
        if base is None:
            return None
        path = base / name
        try:
            path.mkdir(exist_ok=True)
            (path / "pids.max").write_text(str(limit))
        except OSError:
            return None
        return cls(path)

    def add(self, pid: int) -> None:
        (self.path / "cgroup.procs").write_text(str(pid))

    def hits(self) -> int:
        """How many times a fork was refused for reaching pids.max."""
        try:
            for line in (self.path / "pids.events").read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "max":
                    return int(value)
        except (OSError, ValueError):
            pass
        return 0

    def pids(self) -> list[int]:
        try:
            return [int(p) for p in (self.path / "cgroup.procs").read_text().split()]
        except (OSError, ValueError):
            return []

    def kill(self) -> None:
        """SIGKILL every member, again until none is left (forks may race the first pass)."""
        kill_file = self.path / "cgroup.kill"
        if kill_file.exists():
            with contextlib.suppress(OSError):
                kill_file.write_text("1")
        for _ in range(200):
            members = self.pids()
            if not members:
                return
            for pid in members:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.01)

    def remove(self) -> None:
        self.kill()
        with contextlib.suppress(OSError):
            self.path.rmdir()
        with contextlib.suppress(OSError):
            self.path.parent.rmdir()  # the daemon's group, once its last plugin is gone
