"""Landlock, through its three system calls: confine this process's file and TCP access.

Landlock (Linux 5.13+) lets an unprivileged process give up rights for itself and its
future children; it cannot be undone. A :class:`Ruleset` lists the paths that stay
reachable and how; everything else the ruleset *handles* is denied (EACCES, which
Python raises as PermissionError). What each ABI version adds:

- 1: files (read, write, execute, make, remove); 2: REFER (link/rename across dirs);
  3: TRUNCATE; 4: TCP bind and connect; 5: device ioctls;
- 6: scoping: no signals to, and no abstract Unix sockets of, processes outside.

The kernel's samples/landlock/sandboxer.c does the same in C. No third-party binding:
three syscalls and three structs are less code than a dependency.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

# System call numbers: the same on every architecture (added after the great unification).
_CREATE_RULESET, _ADD_RULE, _RESTRICT_SELF = 444, 445, 446
_CREATE_RULESET_VERSION = 1 << 0
_RULE_PATH_BENEATH, _RULE_NET_PORT = 1, 2
PR_SET_NO_NEW_PRIVS = 38

EXECUTE = 1 << 0
WRITE_FILE = 1 << 1
READ_FILE = 1 << 2
READ_DIR = 1 << 3
REMOVE_DIR = 1 << 4
REMOVE_FILE = 1 << 5
MAKE_CHAR = 1 << 6
MAKE_DIR = 1 << 7
MAKE_REG = 1 << 8
MAKE_SOCK = 1 << 9
MAKE_FIFO = 1 << 10
MAKE_BLOCK = 1 << 11
MAKE_SYM = 1 << 12
REFER = 1 << 13  # ABI 2
TRUNCATE = 1 << 14  # ABI 3
IOCTL_DEV = 1 << 15  # ABI 5
NET_BIND_TCP = 1 << 0  # ABI 4
NET_CONNECT_TCP = 1 << 1  # ABI 4
SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0  # ABI 6
SCOPE_SIGNAL = 1 << 1  # ABI 6

READ = READ_FILE | READ_DIR
READ_EXEC = READ | EXECUTE
WRITE = WRITE_FILE | REMOVE_DIR | REMOVE_FILE | MAKE_DIR | MAKE_REG | MAKE_SYM | REFER | TRUNCATE
_FILE_ONLY = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV  # rights a file can carry


def _fs_access(abi: int) -> int:
    """Every file right this ABI knows (and so can deny)."""
    rights = (1 << 13) - 1
    if abi >= 2:
        rights |= REFER
    if abi >= 3:
        rights |= TRUNCATE
    if abi >= 5:
        rights |= IOCTL_DEV
    return rights


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1  # __attribute__((packed)) in the kernel's header: 12 bytes
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


class LandlockUnavailable(OSError):
    """This kernel (or platform) offers no Landlock: the message says why."""


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc


def abi_version() -> int:
    """The kernel's Landlock ABI version; 0 when there is none (not Linux, disabled)."""
    if not sys.platform.startswith("linux"):
        return 0
    libc = _libc()
    version = libc.syscall(_CREATE_RULESET, None, ctypes.c_size_t(0), _CREATE_RULESET_VERSION)
    return max(int(version), 0)


def no_new_privs() -> None:
    """No setuid binary or file capability can raise this process's rights again."""
    if _libc().prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_NO_NEW_PRIVS): {os.strerror(err)}")


@dataclass
class Ruleset:
    """What stays allowed once :meth:`restrict_self` runs; everything else is denied.

    ``deny_tcp`` handles TCP bind/connect with no port allowed (ABI 4+); ``scoped``
    confines signals and abstract Unix sockets to this domain (ABI 6+).
    """

    paths: dict[Path, int] = field(default_factory=dict)
    deny_tcp: bool = True
    scoped: bool = True

    def allow(self, paths: Iterable[str | os.PathLike[str]], access: int) -> Ruleset:
        """Allow ``access`` beneath each path that exists (missing ones are skipped)."""
        for raw in paths:
            path = Path(raw)
            try:
                path.stat()
            except OSError:  # missing, or not ours to see: nothing to grant
                continue
            self.paths[path] = self.paths.get(path, 0) | access
        return self

    def restrict_self(self) -> dict[str, object]:
        """Apply the rules to this process (and its future children), for good.

        Returns what was enforced: ``{"abi", "files", "tcp", "scoped"}``. Raises
        LandlockUnavailable when the kernel has no Landlock; no_new_privs must be set.
        """
        abi = abi_version()
        if abi < 1:
            raise LandlockUnavailable(
                "Landlock is not available (needs Linux 5.13+ with 'landlock' in the lsm= "
                "boot parameter)"
            )
        handled_fs = _fs_access(abi)
        attr = _RulesetAttr(handled_fs, 0, 0)
        size = ctypes.sizeof(_RulesetAttr)
        tcp = self.deny_tcp and abi >= 4
        scoped = self.scoped and abi >= 6
        if tcp:
            attr.handled_access_net = NET_BIND_TCP | NET_CONNECT_TCP
        if scoped:
            attr.scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL
        if abi < 6:
            size = 16  # older kernels reject a struct with the unknown `scoped` field
        if abi < 4:
            size = 8
        libc = _libc()
        fd = int(libc.syscall(_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), 0))
        if fd < 0:
            _raise("landlock_create_ruleset")
        try:
            for path, access in self.paths.items():
                self._add_path(libc, fd, path, access & handled_fs)
            if libc.syscall(_RESTRICT_SELF, fd, 0) != 0:
                _raise("landlock_restrict_self")
        finally:
            os.close(fd)
        return {"abi": abi, "files": True, "tcp": tcp, "scoped": scoped}

    @staticmethod
    def _add_path(libc: ctypes.CDLL, ruleset: int, path: Path, access: int) -> None:
        try:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except OSError:
            return  # vanished since allow(): nothing to grant
        try:
            if not os.path.isdir(path):
                access &= _FILE_ONLY  # the kernel refuses directory rights on a file
            rule = _PathBeneathAttr(access, fd)
            if libc.syscall(_ADD_RULE, ruleset, _RULE_PATH_BENEATH, ctypes.byref(rule), 0) != 0:
                _raise(f"landlock_add_rule({path})")
        finally:
            os.close(fd)


def _raise(what: str) -> None:
    err = ctypes.get_errno()
    raise OSError(err, f"{what}: {os.strerror(err)}")
