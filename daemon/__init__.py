"""Hearth: a private assistant whose model, data and network stay on the user's machine."""

__version__ = "0.1.0"
PROTOCOL_VERSION = 1
