"""The plugin sandbox, applied by the plugin process to itself before it imports any
plugin code. The daemon builds the :func:`plan`; the child runs :func:`apply`.

Layers (Linux), each reported by name so nothing runs silently unsandboxed:

- ``files``: Landlock. Read-only: the interpreter, the standard library and site-packages,
  the plugin's folder, the SDK, the granted read paths. Read-write: the plugin's data dir
  and the granted write paths. Everything else — ~/.ssh, the vault, the daemon's
  socket — is EACCES (PermissionError). **Required.**
- ``network``: a network namespace of its own (nothing but a downed loopback) and, with
  Landlock ABI 4+, no TCP bind/connect at all. **Required** (either one).
- ``no_new_privs``: no setuid binary can give rights back. Required with Landlock.
- ``sockets``: seccomp: no new Unix-domain sockets and no io_uring, so the daemon's own
  socket, the D-Bus session (the keychain) and the X server stay out of reach — Landlock
  does not cover connect() on a socket path. **Required.**
- ``processes``: a pids cgroup with ``pids.max`` (the daemon puts the process in it), or
  RLIMIT_NPROC inside a user namespace of its own, where it counts only the plugin's
  processes. Root is exempt from RLIMIT_NPROC, so a root daemon needs the cgroup.
  Missing: the plugin runs *degraded* and says so.
- ``scope``: Landlock ABI 6+: no signals to processes outside. Missing: degraded.
- rlimits: address space (memory), CPU seconds, open files, no core dumps.

macOS: the daemon starts the child under ``sandbox-exec`` with :func:`macos_profile`
(deny by default; read the code and the grants, write the data dir and the write
grants; no network, no fork). Written from Apple's profile language but not yet run on
a Mac: it needs a macOS test run before it is trusted. Windows (job object, restricted
token) is described in docs/plugins.md; there a plugin is refused.
"""

from __future__ import annotations

import ctypes
import os
import resource
import sys
import sysconfig
from pathlib import Path
from typing import Any

from daemon.sandbox import landlock, seccomp

CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
REQUIRED = ("files", "network", "sockets")

# Files a Python process needs from /etc and /dev; the rest of /etc (shadow…) stays shut.
_SYSTEM_FILES = ("/etc/ld.so.cache", "/etc/localtime", "/etc/timezone", "/dev/urandom")
_SYSTEM_DIRS = (
    "/usr",
    "/lib",
    "/lib64",
    "/lib32",
    "/bin",
    "/sbin",
    "/etc/ssl",
    "/etc/alternatives",
)


def code_roots() -> list[str]:
    """Where this interpreter's code lives: read-only inside the sandbox."""
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    for name in ("stdlib", "platstdlib", "purelib", "platlib"):
        roots.add(sysconfig.get_path(name))
    import plugins

    for module in (plugins.__file__, __file__):  # the SDK and the child's own package
        assert module is not None
        roots.add(str(Path(module).resolve().parents[1]))
    roots.add(str(Path(sys.executable).resolve().parent))
    return sorted(roots)


def plan(
    *,
    folder: Path,
    data_dir: Path,
    read: list[Path],
    write: list[Path],
    limits: dict[str, Any],
    cgroup: bool,
    disable: list[str],
) -> dict[str, Any]:
    """What the child must apply: JSON-able, sent over the channel with ``setup``."""
    return {
        "read_exec": [*code_roots(), *_SYSTEM_DIRS, *_SYSTEM_FILES],
        "read": [str(folder), *map(str, read)],
        "write": [str(data_dir), "/dev/null", *map(str, write)],
        "limits": limits,
        "cgroup": cgroup,
        "disable": disable,  # test hook: layers to pretend this kernel lacks
    }


SANDBOX_EXEC_ENV = "HEARTH_SANDBOX_EXEC"  # set by the daemon when it wrapped the child


def _sbpl(path: str) -> str:
    return '"' + path.replace("\\", "\\\\").replace('"', '\\"') + '"'


def macos_profile(spec: dict[str, Any], executable: str) -> str:
    """The sandbox-exec profile for a plan: what the Landlock rules say, in Apple's terms."""
    read = " ".join(f"(subpath {_sbpl(p)})" for p in [*spec["read_exec"], *spec["read"]])
    write = " ".join(f"(subpath {_sbpl(p)})" for p in spec["write"])
    return "\n".join(
        [
            "(version 1)",
            "(deny default)",
            f"(allow process-exec (literal {_sbpl(executable)}))",
            "(allow file-read-metadata)",
            f"(allow file-read* {read} {write})",
            f"(allow file-write* {write})",
            "(allow sysctl-read)",
            "(allow signal (target self))",
        ]
    )  # no network*, no process-fork: denied by default


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _unshare_network(root: bool) -> str | None:
    """Enter an empty network namespace; return "user" when a user namespace came with it."""
    libc = _libc()
    if root and libc.unshare(CLONE_NEWNET) == 0:
        return "root"
    uid, gid = os.getuid(), os.getgid()
    if libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0:
        return None
    for name, text in (
        ("setgroups", "deny"),
        ("uid_map", f"{uid} {uid} 1"),
        ("gid_map", f"{gid} {gid} 1"),
    ):
        with open(f"/proc/self/{name}", "w") as fh:
            fh.write(text)
    return "user"


def _rlimits(limits: dict[str, Any]) -> None:
    def cap(which: int, value: int) -> None:
        _, hard = resource.getrlimit(which)
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(which, (value, value if which != resource.RLIMIT_CPU else value + 5))

    cap(resource.RLIMIT_CORE, 0)
    cap(resource.RLIMIT_NOFILE, int(limits["open_files"]))
    cap(resource.RLIMIT_CPU, int(limits["cpu_seconds"]))


def apply(spec: dict[str, Any]) -> dict[str, Any]:
    """Sandbox this process as ``spec`` says; returns the report (layers, missing, degraded).

    Raises nothing for a missing layer: the caller refuses to go on when a required one
    is in ``missing``.
    """
    disabled = set(spec.get("disable", []))
    limits = spec["limits"]
    layers: dict[str, Any] = {}
    missing: list[str] = []
    if sys.platform == "darwin" and os.environ.get(SANDBOX_EXEC_ENV) == "1":
        _rlimits(limits)
        _lower_priority()
        profile = "sandbox-exec profile"
        layers = {"files": profile, "network": profile, "sockets": profile, "processes": profile}
        return {"layers": layers, "missing": ["scope"], "degraded": True, "refused": []}
    if not sys.platform.startswith("linux"):
        missing = ["files", "network", "sockets", "processes"]
        return {"layers": {}, "missing": missing, "degraded": True, "refused": missing[:3]}
    _rlimits(limits)
    root = os.geteuid() == 0
    netns = None if "netns" in disabled else _unshare_network(root)
    if spec["cgroup"]:
        layers["processes"] = f"pids cgroup (at most {limits['processes']})"
    elif netns == "user":
        resource.setrlimit(resource.RLIMIT_NPROC, (limits["processes"], limits["processes"]))
        layers["processes"] = f"RLIMIT_NPROC in a user namespace (at most {limits['processes']})"
    else:
        missing.append("processes")  # root ignores RLIMIT_NPROC; outside a userns it counts all
    landlock.no_new_privs()
    layers["no_new_privs"] = True
    if "seccomp" in disabled or not seccomp.supported():
        missing.append("sockets")
    else:
        seccomp.deny_unix_sockets()
        layers["sockets"] = "seccomp: no Unix sockets, no io_uring"
    abi = 0 if "landlock" in disabled else landlock.abi_version()
    if abi:
        ruleset = landlock.Ruleset()
        ruleset.allow(spec["read_exec"], landlock.READ_EXEC)
        ruleset.allow(spec["read"], landlock.READ)
        ruleset.allow(spec["write"], landlock.READ | landlock.WRITE)
        enforced = ruleset.restrict_self()
        layers["files"] = f"Landlock ABI {abi}"
        if not enforced["scoped"]:
            missing.append("scope")
        else:
            layers["scope"] = "no signals or abstract sockets outside"
    else:
        missing.append("files")
        enforced = {"tcp": False}
    network = [
        n for n, on in (("network namespace", netns), ("Landlock TCP", enforced["tcp"])) if on
    ]
    if network:
        layers["network"] = " + ".join(network)
    else:
        missing.append("network")
    # Memory last: the steps above allocate; the plugin's imports count against it.
    memory = int(limits["memory_mb"]) << 20
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    if "nice" not in disabled:
        _lower_priority()
    return {
        "layers": layers,
        "missing": missing,
        "degraded": any(m not in REQUIRED for m in missing),
        "refused": [m for m in missing if m in REQUIRED],
    }


def _lower_priority() -> None:
    """Background work: the lowest nice value (19). Not SCHED_IDLE: that starves the
    plugin outright on a busy machine, so its calls would die at their wall-clock
    timeout; at nice 19 it still gets a small share (about 1.5% of a core per busy
    ordinary task), so interactive work goes first and the plugin still progresses."""
    os.setpriority(os.PRIO_PROCESS, 0, 19)
