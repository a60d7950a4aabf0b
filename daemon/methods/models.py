"""models.list / load / unload / import / rm / convert / catalog."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from daemon import catalog
from daemon.engine import provenance
from daemon.engine.process import RunnerProcess
from daemon.engine.registry import ModelInfo
from daemon.errors import InvalidParams, ModelNotFound
from daemon.methods import params as p
from daemon.rpc import Call, Register


async def list_models(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    app = call.app
    loaded = {(r["model"], r["engine"]) for r in app.scheduler.runners()}
    models, skipped = await asyncio.to_thread(app.registry.scan)
    out = []
    for model in models:
        engines = await asyncio.to_thread(app.engines_for, model)
        chosen = app.chosen_engine(model, None)
        engine = chosen if chosen in engines else None  # None: the configured one cannot
        out.append(
            {
                **model.to_dict(),
                "engine": engine,
                "engines": engines,
                "loaded_on": sorted(e for (m, e) in loaded if m == model.name),
            }
        )
    default = await asyncio.to_thread(app.registry.resolve, None) if models else None
    return {
        "models": out,
        "default": default.name if default else None,
        "skipped": [s.to_dict() for s in skipped],
    }


async def load(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    app = call.app
    name, requested = p.required_str(params, "model"), p.optional_str(params, "engine")

    async def start(found: tuple[ModelInfo, str]) -> tuple[ModelInfo, str, RunnerProcess]:
        model, engine = found
        return model, engine, await app.scheduler.load(model.name, engine, Path(model.path))

    model, engine, runner = await app.in_order(lambda: app.resolve_engine(name, requested), start)
    return {"model": model.name, "engine": engine, "pid": runner.pid}


async def unload(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    app = call.app
    name = p.required_str(params, "model")

    async def stop(model: ModelInfo) -> tuple[ModelInfo, int]:
        return model, await app.scheduler.unload(model.name)

    model, unloaded = await app.in_order(lambda: app.registry.resolve(name), stop)
    return {"model": model.name, "unloaded": unloaded}


async def import_model(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    source = Path(p.required_str(params, "path")).expanduser()
    info = await asyncio.to_thread(call.app.registry.import_file, source)
    return info.to_dict()


async def remove(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    app = call.app
    name = p.required_str(params, "model")
    with contextlib.suppress(ModelNotFound):  # a file that cannot be described: remove() finds it
        await app.in_order(
            lambda: app.registry.resolve(name), lambda m: app.scheduler.unload(m.name)
        )
    info = await asyncio.to_thread(app.registry.remove, name)
    return info.to_dict()


async def convert(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    """A GGUF model → an MLX model folder beside it, registered as `<name>-mlx`."""
    app = call.app
    if params.get("to", "mlx") != "mlx":
        raise InvalidParams("only conversion to mlx is supported", field="to")
    model = await asyncio.to_thread(app.registry.resolve, p.required_str(params, "model"))
    if model.format != "gguf":
        raise InvalidParams(f"{model.name} is already an MLX model", field="model")
    from daemon.engine.convert import convert_gguf_to_mlx

    target = app.paths.models / f"{model.name}-mlx"
    await asyncio.to_thread(convert_gguf_to_mlx, Path(model.path), target)
    return (await asyncio.to_thread(app.registry.resolve, target.name)).to_dict()


async def catalog_list(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    """The curated catalog, this machine's download of each entry, and the one entry
    recommended here (what `hearth models catalog` and the tray's first run show)."""
    app = call.app
    entries = await asyncio.to_thread(catalog.load)
    machine = catalog.this_machine()
    best = catalog.recommend(entries, machine)
    installed = {m.name for m in await asyncio.to_thread(app.registry.list)}
    sources = await asyncio.to_thread(provenance.read, app.registry.models_dir)
    models = []
    for entry in entries:
        names = {fmt: entry.model_name(fmt) for fmt in catalog.FORMATS}
        models.append(
            {
                **entry.to_dict(),
                "download": entry.downloads[machine.format].to_dict(),
                "fits": machine.ram_mb is None or entry.ram_mb <= machine.ram_mb,
                "installed": sorted(n for n in names.values() if n in installed),
                "sources": {n: sources[n] for n in names.values() if n in sources},
            }
        )
    reason = None
    if best is not None:
        ram = f"{machine.ram_mb / 1000:.0f} GB" if machine.ram_mb else "unknown (8 GB assumed)"
        cpu = "" if machine.apple_silicon else (
            f" and has at most {catalog.CPU_MAX_PARAMS_B:g}B parameters (on a CPU)"
        )  # fmt: skip
        reason = (
            f"the best-ranked model with a permissive license that needs at most "
            f"{catalog.RAM_SHARE:.0%} of this machine's RAM ({ram}){cpu}; it needs "
            f"{best.ram_mb / 1000:.1f} GB"
        )
    return {
        "machine": machine.to_dict(),
        "recommended": best.name if best else None,
        "reason": reason,
        "models": models,
        "network": catalog.ONLY_NETWORK_CALL,
    }


def register(add: Register) -> None:
    add("models.list", list_models)
    add("models.load", load)
    add("models.unload", unload)
    add("models.import", import_model)
    add("models.rm", remove)
    add("models.convert", convert)
    add("models.catalog", catalog_list)
