"""What a gateway call hands back: a streamed body, or a whole one.

Reading errors are mapped to :class:`EgressFailed` here, and the name of the lower-level
error is kept for the call's outcome entry.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from daemon.errors import EgressFailed

MAX_BODY = 16 * 1024 * 1024


class Stream:
    """An answered call whose body is read as it arrives (downloads, SSE)."""

    def __init__(self, response: httpx.Response, caller: str) -> None:
        self._response = response
        self._caller = caller
        self.failure: str | None = None

    @property
    def status(self) -> int:
        return self._response.status_code

    @property
    def headers(self) -> httpx.Headers:
        return self._response.headers

    @property
    def url(self) -> str:
        """Where the body comes from, after redirects."""
        return str(self._response.url)

    @property
    def bytes_down(self) -> int:
        return self._response.num_bytes_downloaded

    def iter_bytes(self, chunk_size: int | None = None) -> Iterator[bytes]:
        with self._mapped():
            yield from self._response.iter_bytes(chunk_size)

    def iter_lines(self) -> Iterator[str]:
        with self._mapped():
            yield from self._response.iter_lines()

    def read(self, limit: int = MAX_BODY) -> bytes:
        body = bytearray()
        for chunk in self.iter_bytes():
            body += chunk
            if len(body) > limit:
                self.failure = "BodyTooLarge"
                raise EgressFailed(
                    f"the answer from {self._response.url.host} is over {limit} bytes",
                    caller=self._caller,
                    host=self._response.url.host,
                )
        return bytes(body)

    @contextmanager
    def _mapped(self) -> Iterator[None]:
        try:
            yield
        except httpx.HTTPError as exc:
            self.failure = type(exc).__name__
            raise EgressFailed(
                f"the connection to {self._response.url.host} failed while reading: "
                f"{type(exc).__name__}",
                caller=self._caller,
                host=self._response.url.host,
            ) from exc


@dataclass(frozen=True)
class Reply:
    """An answered call with its whole body."""

    status: int
    headers: httpx.Headers
    content: bytes
    url: str

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.content)
