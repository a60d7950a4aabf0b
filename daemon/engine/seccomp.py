"""A seccomp filter that takes sockets away from a process: no ``socket``, ``socketpair``,
``connect`` or ``io_uring_setup`` from then on, for it and every process it starts.

The runner talks to the daemon over pipes it already holds, so it needs no socket at
all; without one, code in it (Python, C, a subprocess) can reach nothing — no internet,
no loopback port, no Unix socket on disk such as the daemon's own or the D-Bus session
bus. The filter is classic BPF, built here with no library: it needs Linux on x86-64 or
arm64 and ``PR_SET_NO_NEW_PRIVS``. System calls of another architecture (32-bit ones on
x86-64) are refused whole, so they cannot go around it.
"""

from __future__ import annotations

import ctypes
import errno
import platform
import struct
import sys
from collections.abc import Iterable, Mapping

PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ERRNO = 0x00050000
_X32_BIT = 0x40000000

# (audit arch, {name: number}) per machine; numbers from the kernel's syscall tables.
ARCHES: dict[str, tuple[int, dict[str, int]]] = {
    "x86_64": (
        0xC000003E,
        {
            "socket": 41,
            "connect": 42,
            "socketpair": 53,
            "io_uring_setup": 425,
            "unshare": 272,
            "prctl": 157,
            "seccomp": 317,
        },
    ),
    "aarch64": (
        0xC00000B7,
        {
            "socket": 198,
            "socketpair": 199,
            "connect": 203,
            "io_uring_setup": 425,
            "unshare": 97,
            "prctl": 167,
            "seccomp": 277,
        },
    ),
}
SOCKET_CALLS = ("socket", "socketpair", "connect", "io_uring_setup")

_LD_W_ABS, _JEQ_K, _JGE_K, _RET_K = 0x20, 0x15, 0x35, 0x06
_NR, _ARCH, _ARG0 = 0, 4, 16  # offsets in struct seccomp_data (arg0: its low 32 bits)


def machine() -> str | None:
    """The key of ARCHES for this machine, or None where no filter can be built."""
    if not sys.platform.startswith("linux"):
        return None
    name = platform.machine().lower()
    name = {"amd64": "x86_64", "arm64": "aarch64"}.get(name, name)
    return name if name in ARCHES else None


def program(
    arch: str,
    deny: Iterable[str],
    deny_if_arg0: Mapping[str, int] | None = None,
    error: int = errno.EPERM,
) -> list[tuple[int, int, int, int]]:
    """BPF that fails the ``deny`` calls (and ``deny_if_arg0``: a call when its first
    argument is the given value) with ``error``, and lets everything else through."""
    audit_arch, numbers = ARCHES[arch]
    refuse = (_RET_K, 0, 0, SECCOMP_RET_ERRNO | error)
    checks: list[tuple[int, int, int, int]] = []
    if arch == "x86_64":
        checks.append((_JGE_K, 0, 0, _X32_BIT))  # the x32 ABI: same numbers, high bit set
    checks += [(_JEQ_K, 0, 0, numbers[name]) for name in deny]
    conditional = [(numbers[name], value) for name, value in (deny_if_arg0 or {}).items()]
    # Jump offsets are relative to the next instruction; "refuse" is the last one.
    body: list[tuple[int, int, int, int]] = []
    tail = len(checks) + 4 * len(conditional) + 1  # instructions between a check and refuse
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
        refuse,  # another architecture's system call
        (_LD_W_ABS, 0, 0, _NR),
        *body,
        (_RET_K, 0, 0, SECCOMP_RET_ALLOW),
        refuse,
    ]


def install(instructions: list[tuple[int, int, int, int]]) -> None:
    """Load a filter into this thread (inherited by threads and processes started after
    it; load it before starting any). Raises OSError when the kernel refuses."""
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
            code = ctypes.get_errno()
            raise OSError(code, f"prctl({args[0]}): {errno.errorcode.get(code, code)}")


def deny_sockets() -> bool:
    """Take sockets away from this process for good; False where that cannot be done."""
    arch = machine()
    if arch is None:
        return False
    try:
        install(program(arch, SOCKET_CALLS))
    except OSError:
        return False
    return True
