"""``ctx``: everything a plugin may reach, each use checked by the daemon.

Every method is a request over the plugin's one channel to the daemon, which serves it
only as far as the plugin's granted permissions say; a refusal raises
:class:`~plugins.sdk.errors.PermissionDenied` here.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, overload


class Channel(Protocol):
    def call(self, method: str, params: dict[str, Any]) -> Any: ...


@dataclass(frozen=True)
class Response:
    """What ``ctx.fetch`` returns: the answer of an allowed, audited call."""

    status: int
    headers: Mapping[str, str]
    content: bytes
    url: str

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


@dataclass(frozen=True)
class FileEvent:
    """A file trigger's event: ``kind`` is created, modified or moved (then ``path`` is
    where it went)."""

    kind: str
    path: Path


class Model:
    def __init__(self, channel: Channel) -> None:
        self._channel = channel

    @overload
    def generate(
        self, prompt: str, *, system: str | None = None, format: None = None, **options: Any
    ) -> str: ...

    @overload
    def generate(
        self, prompt: str, *, system: str | None = None, format: str | dict[str, Any],
        **options: Any,
    ) -> Any: ...  # fmt: skip

    def generate(
        self, prompt: str, *, system: str | None = None,
        format: str | dict[str, Any] | None = None, **options: Any,
    ) -> Any:  # fmt: skip
        """The model's answer to ``prompt`` (options: temperature, max_tokens, stop, seed…).

        With ``format`` (``"json"`` or a JSON Schema) the answer is held to it and comes
        back parsed: a dict, list… that matches the schema. An answer that cannot be
        completed raises ``HearthError`` (kind ``structured_output_failed``)."""
        params: dict[str, Any] = {"prompt": prompt, "options": _with_format(options, format)}
        if system is not None:
            params["system"] = system
        return _answer(self._channel.call("model.generate", params), format)

    @overload
    def chat(
        self, messages: list[dict[str, str]], *, format: None = None, **options: Any
    ) -> str: ...

    @overload
    def chat(
        self, messages: list[dict[str, str]], *, format: str | dict[str, Any], **options: Any
    ) -> Any: ...

    def chat(
        self, messages: list[dict[str, str]], *, format: str | dict[str, Any] | None = None,
        **options: Any,
    ) -> Any:  # fmt: skip
        """The model's next message after ``messages`` ([{role, content}, …]); with
        ``format``, its parsed value, as for ``generate``."""
        params = {"messages": messages, "options": _with_format(options, format)}
        return _answer(self._channel.call("model.chat", params), format)


def _with_format(options: dict[str, Any], format: str | dict[str, Any] | None) -> dict[str, Any]:
    return options if format is None else {**options, "format": format}


def _answer(result: dict[str, Any], format: str | dict[str, Any] | None) -> Any:
    return str(result["text"]) if format is None else result["json"]


class Clipboard:
    def __init__(self, channel: Channel) -> None:
        self._channel = channel

    def read(self) -> str:
        return str(self._channel.call("clipboard.read", {})["text"])

    def write(self, text: str) -> None:
        self._channel.call("clipboard.write", {"text": text})


class Storage:
    """A small key-value store of JSON values, kept encrypted in the vault."""

    def __init__(self, channel: Channel) -> None:
        self._channel = channel

    def get(self, key: str, default: Any = None) -> Any:
        result = self._channel.call("storage.get", {"key": key})
        return result["value"] if result["found"] else default

    def set(self, key: str, value: Any) -> None:
        self._channel.call("storage.set", {"key": key, "value": value})

    def delete(self, key: str) -> None:
        self._channel.call("storage.delete", {"key": key})

    def keys(self) -> list[str]:
        return list(self._channel.call("storage.keys", {})["keys"])

    def __getitem__(self, key: str) -> Any:
        result = self._channel.call("storage.get", {"key": key})
        if not result["found"]:
            raise KeyError(key)
        return result["value"]

    def __setitem__(self, key: str, value: Any) -> None:
        self.set(key, value)

    def __delitem__(self, key: str) -> None:
        self.delete(key)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and bool(
            self._channel.call("storage.get", {"key": key})["found"]
        )

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())


class Log:
    """The plugin's log (``hearth plugins logs ID``), kept in the vault."""

    def __init__(self, channel: Channel) -> None:
        self._channel = channel

    def __call__(self, message: str, level: str = "info") -> None:
        self._channel.call("log", {"level": level, "message": str(message)})

    def info(self, message: str) -> None:
        self(message, "info")

    def warning(self, message: str) -> None:
        self(message, "warning")

    def error(self, message: str) -> None:
        self(message, "error")


class Context:
    """``ctx``, handed to every command and trigger."""

    def __init__(self, channel: Channel, plugin_id: str, data_dir: Path, trigger: str) -> None:
        self._channel = channel
        self.plugin_id = plugin_id
        self.data_dir = data_dir
        self.trigger = trigger  # "command", "file", "every", "cron" or "hotkey"
        self.model = Model(channel)
        self.clipboard = Clipboard(channel)
        self.storage = Storage(channel)
        self.log = Log(channel)

    def fetch(
        self,
        url: str,
        *,
        method: str = "GET",
        headers: Mapping[str, str] | None = None,
        data: bytes | str | None = None,
    ) -> Response:
        """One HTTP call through the daemon's egress gateway (audited under this plugin)."""
        body = data.encode() if isinstance(data, str) else data
        params: dict[str, Any] = {"url": url, "method": method, "headers": dict(headers or {})}
        if body is not None:
            params["body"] = base64.b64encode(body).decode()
        result = self._channel.call("fetch", params)
        return Response(
            status=int(result["status"]),
            headers=dict(result["headers"]),
            content=base64.b64decode(result["body"]),
            url=str(result["url"]),
        )

    def notify(self, title: str, text: str) -> None:
        """Show a notification (the tray shows it; `hearth plugins logs` keeps it)."""
        self._channel.call("notify", {"title": title, "text": text})
