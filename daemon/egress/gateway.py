"""The daemon's one HTTP client: every outbound call is decided, audited and counted here.

For each call (and each redirect hop, which is a call to a new place) the gateway

1. asks the policy, on the caller and the host name in the URL, before any DNS lookup;
2. writes an ``intent`` entry (where, why, the decision) — a denied call stops here,
   after an ``outcome`` entry recording the refusal;
3. sends it, with the socket guard's passage open for that host only;
4. writes an ``outcome`` entry: status, body bytes up (those the connection took, also
   when no answer came) and down, duration, and on failure the error's class name
   (messages can quote header values, so they stay out).

A redirect the gateway will not follow (not http(s), credentials in it, not a URL) is a
refusal like a denied call: audited, and raised as :class:`EgressDenied`.

Query strings, headers and bodies are never logged. No proxies or netrc from the
environment (``trust_env=False``) and no cookie jar: nothing links one call to another
or leaves by a path the policy did not see. The one proxy used is the one the user set
in Hearth (``proxy``); each call through it says so in its intent entry.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any
from urllib.parse import urlsplit

import httpx

from daemon import __version__
from daemon.egress.audit import AuditLog
from daemon.egress.guard import passage
from daemon.egress.policy import Policy, normalize_host
from daemon.egress.response import MAX_BODY, Reply, Stream
from daemon.errors import EgressDenied, EgressFailed, InvalidParams

DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
# Headers a redirect to another origin keeps; the rest (credentials above all) stay behind.
_CROSS_ORIGIN_HEADERS = frozenset({"accept", "accept-encoding", "range", "user-agent"})


def _target(url: httpx.URL) -> dict[str, object]:
    """What the audit log may know about a URL: no query, no fragment, no userinfo."""
    return {
        "scheme": url.scheme,
        "host": normalize_host(url.raw_host.decode("ascii")),
        "port": url.port or (443 if url.scheme == "https" else 80),
        "path": url.path,
    }


def parse_url(url: str | httpx.URL) -> httpx.URL:
    """An http(s) URL with a host and no credentials, or :class:`InvalidParams` saying why."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise InvalidParams(f"not a URL: {exc}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise InvalidParams("only http:// and https:// URLs with a host can be fetched")
    if parsed.userinfo:
        raise InvalidParams("credentials in a URL are refused: pass them as a header")
    return parsed


def _proxy_address(proxy: str | None) -> str | None:
    if proxy is None:
        return None
    url = httpx.URL(proxy)
    return f"{url.host}:{url.port or (443 if url.scheme == 'https' else 80)}"


def _origin(url: httpx.URL) -> tuple[str, str]:
    return url.scheme, f"{url.host}:{url.port}"


def _redirect_target(url: httpx.URL, location: str) -> httpx.URL:
    """Where a redirect points, or :class:`InvalidParams` when it is nowhere to follow."""
    try:
        joined = url.join(location)
    except httpx.InvalidURL as exc:
        raise InvalidParams(f"not a URL: {exc}") from None
    return parse_url(joined)


class _Upload(httpx.SyncByteStream):
    """A request body that counts what the connection took: a chunk counts once the
    transport asks for the next one, so it was written whole."""

    CHUNK = 64 * 1024

    def __init__(self, body: bytes) -> None:
        self._body = body
        self.sent = 0

    def __iter__(self) -> Iterator[bytes]:
        for start in range(0, len(self._body), self.CHUNK):
            chunk = self._body[start : start + self.CHUNK]
            yield chunk
            self.sent += len(chunk)


class _Call:
    """One call's audit state, from its intent entry to its single outcome entry."""

    def __init__(self, intent: dict[str, Any]) -> None:
        self.intent = intent
        self.started = time.monotonic()
        self.response: httpx.Response | None = None
        self.upload: _Upload | None = None
        self.error: str | None = None

    def finish(self, audit: AuditLog) -> None:
        response = self.response
        keep = ("caller", "method", "scheme", "host", "port", "path")
        audit.append(
            {
                "phase": "outcome",
                "intent": self.intent["seq"],
                **{name: self.intent[name] for name in keep},
                "status": response.status_code if response is not None else None,
                "bytes_up": self.upload.sent if self.upload is not None else 0,
                "bytes_down": response.num_bytes_downloaded if response is not None else 0,
                "duration_ms": round((time.monotonic() - self.started) * 1000, 1),
                "decision": self.intent["decision"],
                "error": self.error,
            }
        )


class Gateway:
    """Decides, audits and performs outbound HTTP calls.

    ``policy`` is a plain attribute: assign a new :class:`Policy` to change it.
    """

    def __init__(
        self,
        policy: Policy,
        audit: AuditLog,
        *,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        max_redirects: int = 5,
        proxy: str | None = None,
    ) -> None:
        self.policy = policy
        self._audit = audit
        self._max_redirects = max_redirects
        self._timeout = timeout
        self.proxy: str | None = None
        self._retired: list[httpx.Client] = []
        self._client = self._new_client(None)
        self.set_proxy(proxy)

    def _new_client(self, proxy: str | None) -> httpx.Client:
        return httpx.Client(
            timeout=self._timeout,
            trust_env=False,
            follow_redirects=False,
            cookies=CookieJar(DefaultCookiePolicy(allowed_domains=[])),
            headers={"User-Agent": f"Hearth/{__version__}"},
            proxy=proxy,
        )

    def set_proxy(self, proxy: str | None) -> None:
        """Send later calls through ``proxy`` (an http(s) URL), or directly with None."""
        if proxy == self.proxy:
            return
        # The old client is closed with the gateway: calls in flight on it run to the end.
        self._retired.append(self._client)
        self._client, self.proxy = self._new_client(proxy), proxy

    def request(
        self,
        caller: str,
        purpose: str,
        method: str,
        url: str | httpx.URL,
        *,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        follow_redirects: bool = True,
        max_body: int = MAX_BODY,
    ) -> Reply:
        """One call with its body read whole (up to ``max_body`` bytes)."""
        with self.stream(
            caller,
            purpose,
            method,
            url,
            headers=headers,
            content=content,
            follow_redirects=follow_redirects,
        ) as stream:
            body = stream.read(max_body)
            return Reply(stream.status, stream.headers, body, stream.url)

    @contextmanager
    def stream(
        self,
        caller: str,
        purpose: str,
        method: str,
        url: str | httpx.URL,
        *,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        follow_redirects: bool = True,
    ) -> Iterator[Stream]:
        """One call whose body is read inside the ``with`` block; its outcome entry is
        written when the block ends, with the bytes actually received.

        Redirects are followed for GET and HEAD only, each hop judged and audited as a
        call of its own; a hop to another origin drops all but a few harmless headers.
        """
        method = method.upper()
        target = parse_url(url)
        sent = dict(headers or {})
        follow = follow_redirects and method in ("GET", "HEAD")
        for _ in range(self._max_redirects + 1):
            call, response = self._send(caller, purpose, method, target, sent, content)
            location = response.headers.get("location")
            if not (follow and response.status_code in _REDIRECTS and location):
                break
            response.close()
            call.finish(self._audit)
            try:
                following = _redirect_target(target, location)
            except InvalidParams as exc:
                raise self._refuse_redirect(
                    caller, purpose, method, target, location, exc
                ) from None
            if _origin(following) != _origin(target):
                sent = {k: v for k, v in sent.items() if k.lower() in _CROSS_ORIGIN_HEADERS}
            target = following
        else:
            raise EgressFailed(
                f"{caller}: more than {self._max_redirects} redirects from {_origin(target)[1]}",
                caller=caller,
            )
        stream = Stream(response, caller)
        try:
            yield stream
        except BaseException as exc:
            call.error = stream.failure or type(exc).__name__
            raise
        finally:
            response.close()
            call.finish(self._audit)

    def _send(
        self,
        caller: str,
        purpose: str,
        method: str,
        url: httpx.URL,
        headers: dict[str, str],
        content: bytes | None,
    ) -> tuple[_Call, httpx.Response]:
        where = _target(url)
        host = str(where["host"])
        policy = self.policy  # one snapshot for the decision and its message
        decision = policy.decide(caller, host)
        intent = self._audit.append(
            {
                "phase": "intent",
                "caller": caller,
                "purpose": purpose,
                "method": method,
                **where,
                "bytes_up": len(content or b""),
                "decision": decision.verdict,
                "rule": decision.rule,
                "proxy": _proxy_address(self.proxy),
            }
        )
        call = _Call(intent)
        if not decision.allowed:
            call.error = EgressDenied.__name__
            call.finish(self._audit)
            raise EgressDenied(decision.reason, caller=caller, host=host, mode=str(policy.mode))
        client, proxy = self._client, self.proxy  # one snapshot, as for the policy
        request = client.build_request(method, url, headers=headers, content=content)
        if content:
            call.upload = request.stream = _Upload(content)  # Content-Length stays set
        try:
            with passage(host, *([httpx.URL(proxy).host] if proxy else [])):
                response = client.send(request, stream=True)
        except httpx.HTTPError as exc:
            call.error = type(exc).__name__
            call.finish(self._audit)
            raise EgressFailed(
                f"{caller} could not reach {host}: {type(exc).__name__}", caller=caller, host=host
            ) from exc
        call.response = response
        return call, response

    def refuse(
        self, caller: str, purpose: str, method: str, url: str, error: Exception, rule: str
    ) -> None:
        """Record a call refused before it was made: a request that failed validation (a
        file name that would escape its folder, say) is evidence worth keeping too."""
        try:
            parts = urlsplit(url)
        except ValueError:  # not even splittable ("http://[::1"): keep nothing of it
            parts = urlsplit("")
        try:
            port = parts.port
        except ValueError:
            port = None
        intent = self._audit.append(
            {
                "phase": "intent",
                "caller": caller,
                "purpose": purpose[:200],
                "method": method,
                "scheme": parts.scheme[:16] or None,
                "host": parts.hostname,
                "port": port,
                "path": parts.path[:256],
                "bytes_up": 0,
                "decision": "deny",
                "rule": rule,
            }
        )
        call = _Call(intent)
        call.error = type(error).__name__
        call.finish(self._audit)

    def _refuse_redirect(
        self,
        caller: str,
        purpose: str,
        method: str,
        source: httpx.URL,
        location: str,
        why: InvalidParams,
    ) -> EgressDenied:
        """Audit a redirect the gateway will not follow, and the error to raise for it."""
        try:
            shown = str(source.join(location))
        except httpx.InvalidURL:
            shown = location
        host = normalize_host(source.host)
        error = EgressDenied(
            f"{caller}: {host} redirected to a place the gateway does not follow "
            f"({why.message}); nothing was sent there",
            caller=caller,
            host=host,
            reason="bad_redirect",
        )
        self.refuse(caller, purpose, method, shown, error, "invalid-redirect")
        return error

    def close(self) -> None:
        for client in (*self._retired, self._client):
            client.close()
