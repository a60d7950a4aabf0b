"""What a method handler sees: the daemon's services and its own request."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from daemon.protocol import Id

if TYPE_CHECKING:
    from daemon.app import App


@dataclass
class Call:
    app: App
    id: Id
    client: int  # connection number: the unit of fairness and of cancellation
    notify: Callable[[str, dict[str, Any]], None]
    on_cancel: list[Callable[[], None]] = field(default_factory=list)
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True
        for callback in self.on_cancel:
            callback()


Handler = Callable[[Call, dict[str, Any]], Awaitable[Any]]
Register = Callable[[str, Handler], None]
