"""Where Hearth keeps things: one root when HEARTH_HOME is set, else the platform's dirs."""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import platformdirs

APP = "hearth"


@dataclass(frozen=True)
class Paths:
    config: Path
    data: Path
    models: Path
    logs: Path
    run: Path

    @property
    def socket(self) -> Path:
        return self.run / "hearth.sock"

    @property
    def config_file(self) -> Path:
        return self.config / "config.toml"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Paths:
        env = os.environ if environ is None else environ
        home = env.get("HEARTH_HOME")
        if home:
            root = Path(home).expanduser().absolute()
            return cls(root / "config", root / "data", root / "models", root / "logs", root / "run")
        data = Path(platformdirs.user_data_dir(APP))
        return cls(
            config=Path(platformdirs.user_config_dir(APP)),
            data=data,
            models=data / "models",
            logs=Path(platformdirs.user_log_dir(APP)),
            run=_runtime_dir(env),
        )

    def ensure(self) -> None:
        """Create every directory private to the user (0700 at creation: no chmod race)."""
        for path in (self.config, self.data, self.models, self.logs):
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        make_private_dir(self.run)


def _runtime_dir(env: os._Environ[str] | dict[str, str]) -> Path:
    runtime = env.get("XDG_RUNTIME_DIR")
    if runtime and sys.platform.startswith("linux"):
        return Path(runtime) / APP
    # No per-user runtime dir (macOS, bare Linux): a per-user dir in the temp dir.
    return Path(tempfile.gettempdir()) / f"{APP}-{os.getuid()}"


def make_private_dir(path: Path) -> None:
    """Create ``path`` with mode 0700, or check that an existing one is ours and private."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    old = os.umask(0o077)
    try:
        path.mkdir(mode=0o700, exist_ok=True)
    finally:
        os.umask(old)
    st = os.lstat(path)
    if not os.path.isdir(path) or os.path.islink(path):
        raise RuntimeError(f"{path} is not a directory; remove it and try again")
    if st.st_uid != os.getuid():
        raise RuntimeError(f"{path} belongs to another user; refusing to use it")
    if st.st_mode & 0o077:
        os.chmod(path, 0o700)
