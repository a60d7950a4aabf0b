"""A seccomp filter: no new Unix-domain sockets, no io_uring.

Landlock does not govern connect() on a Unix socket by path, and a network namespace
does not isolate path-bound sockets: without this a sandboxed process could still
connect to the daemon's own socket, the user's D-Bus session (the keychain) or the X
server (keystrokes). Sockets created before the filter — a plugin's inherited
socketpair — keep working; ``socket(AF_UNIX, …)`` afterwards fails with EPERM
(PermissionError in Python). io_uring is refused because it can open sockets without
the socket() system call.

Needs no_new_privs (set it first). x86-64 and arm64; another architecture raises
``OSError`` so the caller can refuse or report the layer missing.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform

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
AF_UNIX = 1

# (audit arch, socket, io_uring_setup) per machine.
_ARCH = {
    "x86_64": (0xC000003E, 41, 425),
    "aarch64": (0xC00000B7, 198, 425),
    "arm64": (0xC00000B7, 198, 425),
}


class _Filter(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_uint16),
        ("jt", ctypes.c_uint8),
        ("jf", ctypes.c_uint8),
        ("k", ctypes.c_uint32),
    ]


class _Program(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_Filter))]


def supported() -> bool:
    return platform.machine() in _ARCH


def deny_unix_sockets() -> None:
    """Install the filter on this process (and its future children), for good."""
    arch = _ARCH.get(platform.machine())
    if arch is None:
        raise OSError(errno.ENOSYS, f"no seccomp filter for {platform.machine()}")
    audit_arch, nr_socket, nr_io_uring_setup = arch
    deny = _RET_ERRNO | errno.EPERM
    program = [
        (_LD_W_ABS, 0, 0, 4),  # 0: the architecture
        (_JEQ_K, 1, 0, audit_arch),  # 1: ours → 3
        (_RET_K, 0, 0, _RET_KILL_PROCESS),  # 2: a foreign ABI: no way around the filter
        (_LD_W_ABS, 0, 0, 0),  # 3: the system call number
        (_JGE_K, 6, 0, _X32_BIT),  # 4: the x32 ABI → deny
        (_JEQ_K, 2, 0, nr_socket),  # 5: socket() → look at its domain
        (_JEQ_K, 4, 0, nr_io_uring_setup),  # 6: io_uring → deny
        (_RET_K, 0, 0, _RET_ALLOW),  # 7
        (_LD_W_ABS, 0, 0, 16),  # 8: socket()'s first argument (low half)
        (_JEQ_K, 1, 0, AF_UNIX),  # 9: AF_UNIX → deny
        (_RET_K, 0, 0, _RET_ALLOW),  # 10
        (_RET_K, 0, 0, deny),  # 11
    ]
    filters = (_Filter * len(program))(*(_Filter(*ins) for ins in program))
    prog = _Program(len(program), filters)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_SECCOMP): {os.strerror(err)}")
