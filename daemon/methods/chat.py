"""chat and rewrite: both stream deltas, then return the whole answer."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from daemon.config import Config
from daemon.engine.jobs import Job
from daemon.engine.registry import ModelInfo
from daemon.engine.structured import check_schema
from daemon.errors import InvalidParams
from daemon.methods import history
from daemon.methods import params as p
from daemon.methods.egress import remote_chat
from daemon.presets import BUILTIN, RewriteCleaner, bound, presets, rewrite_messages
from daemon.rpc import Call, Register


async def generate(
    call: Call, params: dict[str, Any], messages: list[dict[str, str]], event: str,
    defaults: dict[str, Any] | None = None, cleaner: RewriteCleaner | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Queue a generation and stream its deltas as `event` notifications. ``defaults``
    are job fields the request's options may override (a chat's, when None)."""
    app = call.app
    if defaults is None:
        defaults = chat_defaults(app.config)
    job_params = {"messages": messages, **defaults, **p.generation_options(params)}
    if "format" in job_params:  # refused before it queues; compiling may take ~0.1 s
        await asyncio.to_thread(check_schema, job_params["format"])
        if "repeat_penalty" not in (params.get("options") or {}):
            # JSON repeats its quotes, commas and keys by nature: a penalty on them would
            # push the model away from closing what the schema asks it to close.
            job_params["repeat_penalty"] = 1.0

    def on_delta(text: str, tokens: int) -> None:
        if cleaner is not None:
            text = cleaner.feed(text)
        if text:
            call.notify(event, {"id": call.id, "text": text, "tokens": tokens})

    async def submit(found: tuple[ModelInfo, str]) -> tuple[ModelInfo, str, Job]:
        model, engine = found
        job = await app.scheduler.submit(
            model.name,
            engine,
            Path(model.path),
            call.client,
            job_params,
            on_delta,
            label=call.id,
        )
        return model, engine, job

    name, requested = p.optional_str(params, "model"), p.engine(params)
    model, engine, job = await app.in_order(lambda: app.resolve_engine(name, requested), submit)
    call.on_cancel.append(lambda: app.scheduler.cancel(job))
    if call.cancelled:  # while it was prepared (history read): ends as if cancelled queued
        app.scheduler.cancel(job)
    result: dict[str, Any] = await job.future
    if cleaner is not None:
        rest = cleaner.feed("", final=True)
        if rest:
            tokens = result["tokens"]["completion"]
            call.notify(event, {"id": call.id, "text": rest, "tokens": tokens})
        result["text"] = cleaner.text
    return {**result, "model": model.name, "engine": engine}


async def chat(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    turn = await history.begin_turn(call.app, params)  # replays the conversation, if any
    if params.get("route", "local") != "local":
        if _format_asked(params):
            raise InvalidParams(
                "options.format needs a local engine: a remote server's answer cannot be "
                "held to the schema. Leave out route, or options.format",
                field="format",
            )
        # never falls back to the local model
        result = await remote_chat(call, {**params, "messages": turn.prompt})
    else:
        result = await generate(call, params, turn.prompt, "chat.delta")
    return await history.finish_turn(turn, result)  # stored before the answer is sent


async def rewrite(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    text = p.required_str(params, "text")
    name = p.required_str(params, "preset")
    available = presets(call.app.config.presets)
    if name not in available:
        raise InvalidParams(
            f"unknown preset {name!r}; available: {', '.join(available)}", field="preset"
        )
    if _format_asked(params):
        raise InvalidParams(
            "rewrite does not take options.format (its answer is prose); use chat",
            field="format",
        )
    messages = rewrite_messages(available[name], text)
    params = {**params, "options": {"temperature": 0.2, **(params.get("options") or {})}}
    if name in call.app.config.remote_presets:  # the user routed this preset explicitly
        remote = {k: v for k, v in params.items() if k != "model"}  # a local model's name
        remote.update(route="remote", messages=messages)
        return await remote_chat(call, remote, "rewrite.delta", RewriteCleaner())
    ratio, extra = bound(name, call.app.config.presets)  # options.max_tokens overrides
    defaults = {"bound": {"text": text, "ratio": ratio, "extra": extra}}
    defaults.update(sampling_defaults(call.app.config))
    return await generate(call, params, messages, "rewrite.delta", defaults, RewriteCleaner())


def sampling_defaults(config: Config) -> dict[str, Any]:
    return {"repeat_penalty": config.repeat_penalty, "repeat_last_n": config.repeat_last_n}


def chat_defaults(config: Config) -> dict[str, Any]:
    return {"max_tokens": config.max_tokens, **sampling_defaults(config)}


def _format_asked(params: dict[str, Any]) -> bool:
    options = params.get("options")
    return isinstance(options, dict) and options.get("format") is not None


async def presets_list(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    """Every preset; `source` is "builtin" or "user" (a user preset may replace a built-in
    one of the same name: then `replaces_builtin` is true)."""
    user = call.app.config.presets
    return {
        "presets": [
            {
                "name": name,
                "instruction": instruction,
                "source": "user" if name in user else "builtin",
                "replaces_builtin": name in user and name in BUILTIN,
                "route": "remote" if name in call.app.config.remote_presets else "local",
            }
            for name, instruction in presets(user).items()
        ]
    }


def register(add: Register) -> None:
    add("chat", chat)
    add("rewrite", rewrite)
    add("rewrite.presets", presets_list)
