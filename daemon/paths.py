"""Where Hearth keeps things: one root when HEARTH_HOME is set, else the platform's dirs."""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from daemon.errors import PermissionDenied

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
            try:
                path.mkdir(mode=0o700, parents=True, exist_ok=True)
            except OSError as exc:
                raise PermissionDenied(
                    f"cannot create {path} ({exc.strerror}); check its parent's owner and "
                    "permissions, or set HEARTH_HOME to a directory of your own",
                    path=str(path),
                ) from exc
        make_private_dir(self.run)


def _runtime_dir(env: os._Environ[str] | dict[str, str]) -> Path:
    runtime = env.get("XDG_RUNTIME_DIR")
    if runtime and sys.platform.startswith("linux"):
        return Path(runtime) / APP
    # No per-user runtime dir (macOS, bare Linux): a per-user dir in the temp dir.
    return Path(tempfile.gettempdir()) / f"{APP}-{os.getuid()}"


def make_private_dir(path: Path) -> None:
    """Create ``path`` with mode 0700, or check that an existing one is ours and private.

    Raises PermissionDenied (one line: the directory, and what to do) where the path is
    taken: another user may have created it first to listen in on our socket."""
    # Not tempfile.gettempdir(): it fails where no temp dir is writable (a hardened
    # service's read-only /tmp), and this is only a hint.
    in_temp = path.parent == Path(tempfile.tempdir or os.environ.get("TMPDIR") or "/tmp")
    where = (
        "set XDG_RUNTIME_DIR to a directory of your own"
        if in_temp
        else "set HEARTH_HOME to a directory of your own"
    )
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        old = os.umask(0o077)
        try:
            path.mkdir(mode=0o700, exist_ok=True)
        finally:
            os.umask(old)
        st = os.lstat(path)
    except OSError as exc:
        raise PermissionDenied(
            f"cannot create {path} ({exc.strerror}); {where}", path=str(path)
        ) from exc
    if not os.path.isdir(path) or os.path.islink(path):
        raise PermissionDenied(f"{path} is not a directory; remove it, or {where}", path=str(path))
    if st.st_uid != os.getuid():
        raise PermissionDenied(
            f"{path} belongs to another user (uid {st.st_uid}); Hearth will not put its "
            f"socket there. Remove it (as that user or root), or {where}.",
            path=str(path),
        )
    if st.st_mode & 0o077:
        os.chmod(path, 0o700)
