"""The plugin host: manifests, the sandbox, supervision, triggers (see docs/plugins.md)."""
