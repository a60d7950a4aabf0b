"""Seccomp filters that take sockets away, for plugins and model runners.

Landlock does not govern connect() on a Unix socket by path, and a network namespace
does not isolate path-bound sockets: without a filter a sandboxed process could still
connect to the daemon's own socket, the user's D-Bus session (the keychain) or the X
server (keystrokes). Two filters are built here, from one small BPF assembler
(:func:`program`):

- :func:`deny_unix_sockets` (plugins): no new Unix-domain sockets and no io_uring.
  Sockets created before — a plugin's inherited socketpair — keep working.
- :func:`deny_sockets` (model runners, which talk over pipes): no ``socket``,
  ``socketpair``, ``connect`` or ``io_uring_setup`` at all, so no Python code, C library
  or subprocess reaches any network, loopback port or Unix socket.

io_uring is refused because it can open sockets without the socket() system call. A
denied call fails with EPERM (PermissionError in Python); a system call of another
architecture (32-bit calls on x86-64) kills the process, so it cannot go around the
filter. x86-64 and arm64 only; elsewhere :func:`deny_unix_sockets` raises ``OSError``
and :func:`deny_sockets` returns False, so the caller can refuse or report the layer
missing. Filters are inherited by every process started afterwards, and stack.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import struct
import sys
from collections.abc import Iterable, Mapping

PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
_RET_KILL_PROCESS = 0x80000000
_RET_ALLOW = 0x7FFF0000
_RET_ERRNO = 0x00050000
_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JGE_K = 0x35
_RET_K = 0x06
_X32_BIT = 0x40000000
_NR, _ARCH, _ARG0 = 0, 4, 16  # offsets in struct seccomp_data (arg0: its low 32 bits)
AF_UNIX = 1

# (audit arch, {name: number}) per machine; numbers from the kernel's syscall tables.
_X86_64 = {"socket": 41, "connect": 42, "socketpair": 53, "io_uring_setup": 425,
           "unshare": 272, "prctl": 157, "seccomp": 317}  # fmt: skip
_AARCH64 = {"socket": 198, "socketpair": 199, "connect": 203, "io_uring_setup": 425,
            "unshare": 97, "prctl": 167, "seccomp": 277}  # fmt: skip
ARCHES: dict[str, tuple[int, dict[str, int]]] = {
    "x86_64": (0xC000003E, _X86_64),
    "aarch64": (0xC00000B7, _AARCH64),
}
SOCKET_CALLS = ("socket", "socketpair", "connect", "io_uring_setup")

Instruction = tuple[int, int, int, int]


def machine() -> str | None:
    """The key of ARCHES for this machine, or None where no filter can be built."""
    if not sys.platform.startswith("linux"):
        return None
    name = platform.machine().lower()
    name = {"amd64": "x86_64", "arm64": "aarch64"}.get(name, name)
    return name if name in ARCHES else None


def supported() -> bool:
    return machine() is not None


def program(
    arch: str,
    deny: Iterable[str],
    deny_if_arg0: Mapping[str, int] | None = None,
    error: int = errno.EPERM,
) -> list[Instruction]:
    """BPF that fails the ``deny`` calls (and ``deny_if_arg0``: a call when its first
    argument is the given value) with ``error``, and lets everything else through."""
    audit_arch, numbers = ARCHES[arch]
    checks: list[Instruction] = []
    if arch == "x86_64":
        checks.append((_JGE_K, 0, 0, _X32_BIT))  # the x32 ABI: same numbers, high bit set
    checks += [(_JEQ_K, 0, 0, numbers[name]) for name in deny]
    conditional = [(numbers[name], value) for name, value in (deny_if_arg0 or {}).items()]
    # Jump offsets count the instructions skipped; "refuse" is the last instruction.
    body: list[Instruction] = []
    tail = len(checks) + 4 * len(conditional) + 1  # from the first check to refuse
    for i, (code, _, _, k) in enumerate(checks):
        body.append((code, tail - i - 1, 0, k))
    for j, (number, value) in enumerate(conditional):
        left = 4 * (len(conditional) - j) + 1  # from this block's first jump to refuse
        body += [
            (_JEQ_K, 0, 3, number),  # not this call: skip the block
            (_LD_W_ABS, 0, 0, _ARG0),
            (_JEQ_K, left - 3, 0, value),
            (_LD_W_ABS, 0, 0, _NR),  # reload the number for the next check
        ]
    return [
        (_LD_W_ABS, 0, 0, _ARCH),
        (_JEQ_K, 1, 0, audit_arch),
        (_RET_K, 0, 0, _RET_KILL_PROCESS),  # a foreign ABI: no way around the filter
        (_LD_W_ABS, 0, 0, _NR),
        *body,
        (_RET_K, 0, 0, _RET_ALLOW),
        (_RET_K, 0, 0, _RET_ERRNO | error),
    ]


def install(instructions: list[Instruction]) -> None:
    """Load a filter into this thread, after setting no_new_privs (inherited by threads
    and processes started after it: load it before starting any). Raises OSError when
    the kernel refuses."""
    libc = ctypes.CDLL(None, use_errno=True)
    packed = b"".join(struct.pack("HBBI", *instruction) for instruction in instructions)
    buffer = ctypes.create_string_buffer(packed)

    class Program(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    fprog = Program(len(instructions), ctypes.cast(buffer, ctypes.c_void_p))
    for args in (
        (PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0),
        (PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(fprog), 0, 0),
    ):
        if libc.prctl(*(ctypes.c_ulong(a) for a in args)) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"prctl({args[0]}): {os.strerror(err)}")


def deny_unix_sockets() -> None:
    """No new Unix-domain sockets and no io_uring, for this process and its future
    children, for good (plugins)."""
    arch = machine()
    if arch is None:
        raise OSError(errno.ENOSYS, f"no seccomp filter for {platform.machine()}")
    install(program(arch, ["io_uring_setup"], {"socket": AF_UNIX}))


def deny_sockets() -> bool:
    """No sockets at all from now on, for this process and its future children (model
    runners); False where that cannot be done."""
    arch = machine()
    if arch is None:
        return False
    try:
        install(program(arch, SOCKET_CALLS))
    except OSError:
        return False
    return True
