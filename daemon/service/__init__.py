"""`hearth service`: Hearth as a service of the OS's own manager, for this user only.

- ``systemd.py``: Linux, a socket unit and a service unit in ~/.config/systemd/user,
  plus the desktop launcher and the tray's autostart entry.
- ``launchd.py``: macOS, an agent plist in ~/Library/LaunchAgents.
- ``purge.py``: what an uninstall leaves (config, vault, models, logs, keychain items)
  and removing it, only when asked.

The file templates live in the repository's ``packaging/`` (``files.py`` finds them, in
a source checkout or in the wheel). Nothing here needs root: every file is the user's.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping

from daemon.service.files import Say, ServiceError
from daemon.service.launchd import Launchd
from daemon.service.systemd import Systemd

__all__ = ["Launchd", "Say", "ServiceError", "Systemd", "for_platform"]


def for_platform(env: Mapping[str, str], platform: str = sys.platform) -> Systemd | Launchd:
    """The service manager of this platform, or ServiceError saying what to do instead."""
    if platform.startswith("linux"):
        return Systemd(env)
    if platform == "darwin":
        return Launchd(env)
    raise ServiceError(
        f"`hearth service` does not manage {platform} yet: see packaging/windows/README.md "
        "for the plan (a named pipe, a Task Scheduler entry, an installer). Meanwhile run "
        "`hearth up` at login."
    )
