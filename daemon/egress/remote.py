"""A minimal OpenAI-compatible chat client (``POST {base}/v1/chat/completions``).

It goes through the gateway like every outbound call, so the policy decides and the
audit log records it. The API key is handed in by the daemon (which keeps it in the
keychain) and travels only in the ``Authorization`` header, which the audit log never
sees; ``repr`` leaves it out too.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from daemon.egress.gateway import Gateway
from daemon.errors import EgressFailed

CALLER = "remote.chat"
_ERROR_BODY_LIMIT = 64 * 1024


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: str | None
    model: str | None
    usage: dict[str, Any] | None


def sse_events(lines: Iterable[str]) -> Iterator[str]:
    """The ``data`` of each server-sent event (multi-line data joined by newlines)."""
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield "\n".join(data)
            data = []
        elif not line.startswith(":"):
            field, _, value = line.partition(":")
            if field == "data":
                data.append(value.removeprefix(" "))
    if data:
        yield "\n".join(data)


def _error_message(status: int, body: bytes, host: str) -> EgressFailed:
    try:
        detail = str(json.loads(body)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        detail = body.decode("utf-8", "replace").strip()
    message = f"{host} answered {status}" + (f": {detail[:300]}" if detail else "")
    if status in (401, 403):
        message = f"{host} refused the API key ({status}): {detail[:300] or 'no reason given'}. "
        message += "Check the key stored for this server."
    return EgressFailed(message, status=status, host=host)


class RemoteChat:
    """Chat completions from one OpenAI-compatible server."""

    def __init__(
        self,
        gateway: Gateway,
        base_url: str,
        *,
        api_key: str | None = None,
        caller: str = CALLER,
    ) -> None:
        base = base_url.rstrip("/")
        self.url = base + ("/chat/completions" if base.endswith("/v1") else "/v1/chat/completions")
        self.host = httpx.URL(self.url).host
        self._gateway = gateway
        self._api_key = api_key
        self._caller = caller

    def __repr__(self) -> str:
        return f"RemoteChat({self.url!r}, api_key={'set' if self._api_key else 'none'})"

    def _headers(self, streaming: bool) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json",
            "Accept": "text/event-stream" if streaming else "application/json",
        }
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return headers

    def complete(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        model: str,
        options: Mapping[str, Any] | None = None,
        on_delta: Callable[[str], None] | None = None,
    ) -> Completion:
        """One chat completion. With ``on_delta``, the answer is streamed (SSE) and each
        piece of text is handed to it as it arrives; the whole answer is returned either way.
        ``options`` (temperature, max_tokens, …) go into the request body as they are."""
        streaming = on_delta is not None
        body = {**(options or {}), "model": model, "messages": list(messages)}
        if streaming:
            body["stream"] = True
        purpose = f"chat with {model} at {self.host}"
        with self._gateway.stream(
            self._caller,
            purpose,
            "POST",
            self.url,
            headers=self._headers(streaming),
            content=json.dumps(body).encode(),
        ) as stream:
            if stream.status >= 400:
                raise _error_message(stream.status, stream.read(_ERROR_BODY_LIMIT), self.host)
            if on_delta is not None:
                return self._collect(stream.iter_lines(), on_delta)
            try:
                answer = json.loads(stream.read())
                choice = answer["choices"][0]
                return Completion(
                    text=choice["message"].get("content") or "",
                    finish_reason=choice.get("finish_reason"),
                    model=answer.get("model"),
                    usage=answer.get("usage"),
                )
            except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
                raise EgressFailed(
                    f"{self.host} sent an answer that is not a chat completion"
                ) from exc

    def _collect(self, lines: Iterable[str], on_delta: Callable[[str], None]) -> Completion:
        pieces: list[str] = []
        finish_reason: str | None = None
        model: str | None = None
        usage: dict[str, Any] | None = None
        for data in sse_events(lines):
            if data.strip() == "[DONE]":
                break
            try:
                chunk = json.loads(data)
                choice = (chunk.get("choices") or [{}])[0]
                text = (choice.get("delta") or {}).get("content")
            except (ValueError, AttributeError, TypeError, IndexError) as exc:
                raise EgressFailed(f"{self.host} sent a malformed stream event") from exc
            model = chunk.get("model") or model
            usage = chunk.get("usage") or usage
            finish_reason = choice.get("finish_reason") or finish_reason
            if text:
                pieces.append(text)
                on_delta(text)
        return Completion("".join(pieces), finish_reason, model, usage)
