"""Take the network away from a runner process before it loads any model code.

On Linux the runner moves into a fresh, empty network namespace (only a downed
loopback inside): even a compromised engine has nowhere to connect to. Elsewhere,
and where the kernel refuses, the daemon's socket guard is the remaining layer.
"""

from __future__ import annotations

import ctypes
import os
import sys

CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000


def confine_runner() -> bool:
    """Unshare the network namespace; return whether the runner is now offline."""
    if not sys.platform.startswith("linux") or os.environ.get("HEARTH_RUNNER_NETNS") == "0":
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    uid, gid = os.getuid(), os.getgid()
    if libc.unshare(CLONE_NEWNET) == 0:
        return True
    # Not privileged: a user namespace grants the right to make a network namespace.
    if libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0:
        return False
    try:
        with open("/proc/self/setgroups", "w") as fh:
            fh.write("deny")
        with open("/proc/self/uid_map", "w") as fh:
            fh.write(f"{uid} {uid} 1")
        with open("/proc/self/gid_map", "w") as fh:
            fh.write(f"{gid} {gid} 1")
    except OSError:
        pass
    return True
