"""Hearth plugins: the SDK a plugin imports (``plugins.sdk``) and the first-party plugins.

Each first-party plugin is a folder here with ``plugin.toml`` and one module, exactly
like a user's plugin; the plugin host loads both the same way.
"""
