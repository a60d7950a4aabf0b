"""What a plugin imports. A complete plugin is ``plugin.toml`` plus one module::

    from plugins.sdk import Plugin

    plugin = Plugin()

    @plugin.command("hello")
    def hello(ctx, name="world"):
        return f"Hello, {name}!"

See docs/plugins.md for the permissions and the triggers.
"""

from plugins.sdk.context import Context, FileEvent, Response
from plugins.sdk.errors import EgressDenied, HearthError, PermissionDenied
from plugins.sdk.plugin import Plugin

__all__ = [
    "Context",
    "EgressDenied",
    "FileEvent",
    "HearthError",
    "PermissionDenied",
    "Plugin",
    "Response",
]
