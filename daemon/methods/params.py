"""Small, explicit checks for method params: each failure names the field and the rule."""

from __future__ import annotations

from typing import Any

from daemon.engine.structured import schema_of
from daemon.errors import InvalidParams

ROLES = ("system", "user", "assistant")


def optional_str(params: dict[str, Any], key: str) -> str | None:
    value = params.get(key)
    if value is not None and not isinstance(value, str):
        raise InvalidParams(f"{key} must be a string", field=key)
    return value


def required_str(params: dict[str, Any], key: str) -> str:
    value = optional_str(params, key)
    if not value:
        raise InvalidParams(f"{key} is required and must be a non-empty string", field=key)
    return value


def messages(params: dict[str, Any]) -> list[dict[str, str]]:
    raw = params.get("messages")
    if not isinstance(raw, list) or not raw:
        raise InvalidParams("messages must be a non-empty list", field="messages")
    out = []
    for i, msg in enumerate(raw):
        if (
            not isinstance(msg, dict)
            or msg.get("role") not in ROLES
            or not isinstance(msg.get("content"), str)
        ):
            raise InvalidParams(
                f"messages[{i}] must be {{role: system|user|assistant, content: string}}",
                field=f"messages[{i}]",
            )
        out.append({"role": msg["role"], "content": msg["content"]})
    if out[-1]["role"] == "user" and not out[-1]["content"].strip():
        raise InvalidParams(
            "the last message is empty: send some text", field=f"messages[{len(out) - 1}]"
        )
    return out


def _number(opts: dict[str, Any], key: str, lo: float, hi: float, integer: bool = False) -> Any:
    value = opts[key]
    ok_type = isinstance(value, int) if integer else isinstance(value, int | float)
    if isinstance(value, bool) or not ok_type or not lo <= value <= hi:
        kind = "an integer" if integer else "a number"
        raise InvalidParams(f"options.{key} must be {kind} from {lo} to {hi}", field=key)
    return value


OPTIONS = {"temperature", "top_p", "max_tokens", "seed", "stop", "engine", "priority"} | {
    "repeat_penalty",
    "repeat_last_n",
    "loop_guard",
    "format",
}
# Hearth's runner's and scheduler's own: never passed on to a remote server
LOCAL_ONLY = {"repeat_penalty", "repeat_last_n", "loop_guard", "priority", "format"}


def generation_options(params: dict[str, Any]) -> dict[str, Any]:
    """options → the runner's job fields: only those the request set (defaults are the
    caller's: see methods/chat.py). A format's schema is only shaped here: chat.generate
    checks it in full."""
    opts = params.get("options") or {}
    if not isinstance(opts, dict):
        raise InvalidParams("options must be an object", field="options")
    known = OPTIONS
    unknown = set(opts) - known
    if unknown:
        raise InvalidParams(f"unknown option(s): {', '.join(sorted(unknown))}", field="options")
    job: dict[str, Any] = {}
    if "temperature" in opts:
        job["temperature"] = float(_number(opts, "temperature", 0, 2))
    if "top_p" in opts:
        job["top_p"] = float(_number(opts, "top_p", 0, 1))
    if "max_tokens" in opts:
        job["max_tokens"] = _number(opts, "max_tokens", 1, 1 << 20, integer=True)
    if "seed" in opts:
        job["seed"] = _number(opts, "seed", 0, 2**31 - 1, integer=True)
    if "repeat_penalty" in opts:
        job["repeat_penalty"] = float(_number(opts, "repeat_penalty", 1, 2))
    if "repeat_last_n" in opts:
        job["repeat_last_n"] = _number(opts, "repeat_last_n", 0, 4096, integer=True)
    if "loop_guard" in opts:
        if not isinstance(opts["loop_guard"], bool):
            raise InvalidParams("options.loop_guard must be true or false", field="loop_guard")
        job["loop_guard"] = opts["loop_guard"]
    if "stop" in opts:
        stop = opts["stop"]
        stop = [stop] if isinstance(stop, str) else stop
        if (
            not isinstance(stop, list)
            or len(stop) > 8
            or not all(isinstance(s, str) and s for s in stop)
        ):
            raise InvalidParams("options.stop must be a string or up to 8 strings", field="stop")
        job["stop"] = stop
    if "priority" in opts:
        if opts["priority"] not in ("interactive", "background"):
            raise InvalidParams(
                "options.priority must be interactive (someone waits for it) or background",
                field="priority",
            )
        job["priority"] = opts["priority"]
    if opts.get("format") is not None:
        if "stop" in job:
            raise InvalidParams(
                "options.stop cannot be used with options.format: the answer ends where its "
                "JSON does, and a stop string could cut it in half",
                field="stop",
            )
        job["format"] = schema_of(opts["format"])
    return job


def engine(params: dict[str, Any]) -> str | None:
    opts = params.get("options") or {}
    value = opts.get("engine") if isinstance(opts, dict) else None
    if value is not None and value not in ("auto", "llamacpp", "mlx"):
        raise InvalidParams("options.engine must be auto, llamacpp or mlx", field="engine")
    return value
