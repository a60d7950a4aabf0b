"""What a plugin sees when the daemon refuses or fails a call.

::

    HearthError             kind: the daemon's stable error name
    ├── PermissionDenied    a permission the plugin was not granted
    │   └── EgressDenied    a host it may not reach (also written to the audit log)
    └── (any other kind)    HearthError with that ``kind``: busy, vault_locked, …

A plugin may catch them; one it does not catch ends its command with the same kind.
"""

from __future__ import annotations

from typing import Any


class HearthError(Exception):
    """A typed refusal or failure from the daemon; ``kind`` is stable, the message for people."""

    kind = "error"

    def __init__(self, message: str, kind: str | None = None, **data: Any) -> None:
        super().__init__(message)
        self.message = message
        if kind is not None:
            self.kind = kind
        self.data = data


class PermissionDenied(HearthError):
    kind = "permission_denied"


class EgressDenied(PermissionDenied):
    kind = "egress_denied"


def from_kind(kind: str, message: str, data: dict[str, Any]) -> HearthError:
    """The SDK error for a daemon error ``kind``."""
    for cls in (EgressDenied, PermissionDenied):
        if cls.kind == kind:
            return cls(message, **data)
    return HearthError(message, kind, **data)
