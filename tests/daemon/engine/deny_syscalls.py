"""Run a command on a "host" that refuses some system calls, as AppArmor's restriction of
unprivileged user namespaces or a container's seccomp profile would: those calls fail
with EPERM for the command and everything it starts.

    python deny_syscalls.py unshare [prctl-seccomp] -- COMMAND ...

``unshare``: no namespace can be made. ``prctl-seccomp``: no seccomp filter can be loaded
(``prctl(PR_SET_SECCOMP)`` and the ``seccomp`` system call). The refusal itself comes
from the kernel, so the code under test takes its real path.
"""

from __future__ import annotations

import os
import sys

from daemon.sandbox import seccomp


def main() -> None:
    split = sys.argv.index("--")
    names, command = sys.argv[1:split], sys.argv[split + 1 :]
    arch = seccomp.machine()
    if arch is None:
        raise SystemExit("no seccomp filter can be built on this machine")
    deny = [name for name in names if name != "prctl-seccomp"]
    arg0 = {}
    if "prctl-seccomp" in names:
        deny.append("seccomp")
        arg0["prctl"] = seccomp.PR_SET_SECCOMP
    seccomp.install(seccomp.program(arch, deny, arg0))
    os.execvp(command[0], command)


if __name__ == "__main__":
    main()
