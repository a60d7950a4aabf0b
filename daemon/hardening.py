"""No core dumps of the daemon or its runners: their memory holds keys and conversations.

``RLIMIT_CORE`` 0 stops core files; on Linux ``PR_SET_DUMPABLE`` 0 also stops a
core-dump handler that is a pipe (systemd-coredump ignores the limit) and keeps other
processes of the same user from reading this one's memory through ``/proc`` or ptrace.
A runner sets it after its namespaces are made (a non-dumpable process cannot write its
own ``/proc/self/uid_map``).
"""

from __future__ import annotations

import ctypes
import sys
from typing import Any

PR_SET_DUMPABLE = 4
PR_GET_DUMPABLE = 3


def no_core_dumps() -> dict[str, Any]:
    """Turn core dumps off for this process (and what it starts); returns :func:`state`."""
    try:
        import resource
    except ImportError:  # Windows: no core dumps to turn off
        return state()
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    return state()


def state() -> dict[str, Any]:
    """``core_limit`` (bytes; None where there is no such limit) and ``dumpable`` (None
    where the platform has no such flag), as the kernel reports them now."""
    try:
        import resource
    except ImportError:
        return {"core_limit": None, "dumpable": None}
    limit = resource.getrlimit(resource.RLIMIT_CORE)[0]
    dumpable = None
    if sys.platform.startswith("linux"):
        dumpable = bool(ctypes.CDLL(None).prctl(PR_GET_DUMPABLE, 0, 0, 0, 0))
    return {"core_limit": None if limit == resource.RLIM_INFINITY else limit, "dumpable": dumpable}
