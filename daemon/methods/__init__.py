"""Every RPC method, registered by its namespace module through one callback."""

from __future__ import annotations

from daemon.methods import chat, egress, history, models, plugins, prefs, session, vault
from daemon.rpc import Handler


def all_methods() -> dict[str, Handler]:
    methods: dict[str, Handler] = {}

    def register(name: str, handler: Handler) -> None:
        if name in methods:
            raise ValueError(f"method {name} registered twice")
        methods[name] = handler

    for module in (session, chat, models, egress, history, vault, prefs, plugins):
        module.register(register)
    return methods
