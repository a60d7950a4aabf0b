"""Every RPC method, registered by its namespace module through one callback.

The modules are imported when all_methods() is called, not with this package: the
daemon answers ``hello`` and ``status`` (from ``session``) while the rest, and the heavy
libraries they use, load.
"""

from __future__ import annotations

from daemon.rpc import Handler


def all_methods() -> dict[str, Handler]:
    from daemon.methods import chat, egress, history, models, plugins, prefs, session, vault

    methods: dict[str, Handler] = {}

    def register(name: str, handler: Handler) -> None:
        if name in methods:
            raise ValueError(f"method {name} registered twice")
        methods[name] = handler

    for module in (session, chat, models, egress, history, vault, prefs, plugins):
        module.register(register)
    return methods
