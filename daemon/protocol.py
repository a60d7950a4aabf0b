"""JSON-RPC 2.0 framing: one JSON object per line, UTF-8, newline-terminated."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from daemon.errors import HearthError, InvalidRequest, ParseError

Id = int | str | None


@dataclass(frozen=True)
class Request:
    method: str
    params: dict[str, Any]
    id: Id
    is_notification: bool


def decode(line: bytes) -> Any:
    try:
        return json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ParseError(f"parse error: {exc}") from exc


def parse_request(obj: Any) -> Request:
    """Validate one JSON-RPC request object (not a batch)."""
    if not isinstance(obj, dict):
        raise InvalidRequest("a request must be a JSON object")
    rid = obj.get("id")
    if rid is not None and (not isinstance(rid, int | str) or isinstance(rid, bool)):
        raise InvalidRequest("id must be a string, a number or null")
    if obj.get("jsonrpc") != "2.0":
        raise InvalidRequest('"jsonrpc" must be "2.0"', id=rid)
    method = obj.get("method")
    if not isinstance(method, str) or not method:
        raise InvalidRequest('"method" must be a non-empty string', id=rid)
    params = obj.get("params", {})
    if isinstance(params, list) and not params:
        params = {}
    if not isinstance(params, dict):
        raise InvalidRequest('"params" must be an object', id=rid)
    return Request(method, params, rid, "id" not in obj)


def encode(obj: dict[str, Any]) -> bytes:
    """One line of UTF-8 JSON. Text holding a lone surrogate (valid JSON in, e.g. a method
    name echoed in an error) cannot be UTF-8: that line goes out \\u-escaped instead."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    try:
        return text.encode() + b"\n"
    except UnicodeEncodeError:
        return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


def response(rid: Id, result: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "result": result}


def error(rid: Id, err: HearthError) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "error": err.to_rpc()}


def notification(method: str, params: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": method, "params": params}
