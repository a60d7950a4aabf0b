"""Take the network away from a runner process before it loads any model code.

On Linux the runner gets two layers:

1. a fresh network namespace (only a downed loopback inside): ``CLONE_NEWNET``, or with
   a user namespace when unprivileged. Kernels and hosts may refuse it (AppArmor's
   restriction of unprivileged user namespaces on Ubuntu 24.04, containers);
2. a seccomp filter that takes sockets away for good (seccomp.py). This is the layer
   that matters: a namespace still lets a process reach Unix sockets on disk (the
   daemon's, the D-Bus session bus), and neither the namespace nor the Python socket
   guard sees a C library or a subprocess. Without sockets there is nothing to reach.

On macOS ``sandbox_init`` applies a profile that denies all network use (Unix sockets
included). Then core dumps are turned off. The runner reports what it got (an
:class:`Isolation`) and, unless the user opted out, refuses to run unconfined.
"""

from __future__ import annotations

import ctypes
import os
import sys
from dataclasses import asdict, dataclass
from typing import Any

from daemon.hardening import no_core_dumps
from daemon.sandbox import seccomp

CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
MACOS_PROFILE = b"(version 1) (allow default) (deny network*)"
UNCONFINED = (
    "this model runner could not be confined: the kernel refused both a network namespace "
    "and the filter that takes sockets away (a container, or a host that restricts them), "
    "and Hearth does not run a model that could reach the network or the daemon. Where you "
    "accept that risk, set `allow_unconfined_runners = true` in config.toml; `hearth "
    "status` then says that runners are unconfined."
)


@dataclass(frozen=True)
class Isolation:
    """What a runner got: ``netns`` (own network namespace), ``seccomp`` (no sockets),
    ``profile`` (macOS no-network sandbox), and whether core dumps are off."""

    netns: bool = False
    seccomp: bool = False
    profile: bool = False
    core_dumps_off: bool = False

    @property
    def confined(self) -> bool:
        """Whether the kernel keeps this process off every network, Unix sockets included."""
        return self.seccomp or self.profile

    @property
    def network(self) -> str:
        layers = [n for n, on in (("seccomp", self.seccomp), ("namespace", self.netns),
                                  ("sandbox-profile", self.profile)) if on]  # fmt: skip
        return "+".join(layers) if self.confined else "unconfined"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "confined": self.confined, "network": self.network}


def confine_runner() -> Isolation:
    """Apply every layer this platform offers; return what held."""
    netns = _unshare_network() if sys.platform.startswith("linux") else False
    no_sockets = seccomp.deny_sockets()
    profile = _macos_no_network() if sys.platform == "darwin" else False
    hardening = no_core_dumps()  # after the namespaces: see daemon.hardening
    off = hardening["core_limit"] == 0 and hardening["dumpable"] in (False, None)
    return Isolation(netns=netns, seccomp=no_sockets, profile=profile, core_dumps_off=off)


def _unshare_network() -> bool:
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


def _macos_no_network() -> bool:
    """``sandbox_init`` with a profile denying network* (deprecated, still in libSystem)."""
    try:
        libc = ctypes.CDLL("/usr/lib/libSystem.dylib")
        error = ctypes.c_char_p()
        if libc.sandbox_init(MACOS_PROFILE, 0, ctypes.byref(error)) == 0:
            return True
        libc.sandbox_free_error(error)
    except (OSError, AttributeError):
        pass
    return False
