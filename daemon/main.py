"""`hearth daemon`: claim the socket, build the services, serve until a signal."""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import signal
import socket
import stat
from pathlib import Path
from typing import IO

from daemon.activation import Listener, WrongSocket, bind_socket, inherited_socket, sd_notify
from daemon.app import App
from daemon.config import Config
from daemon.egress.service import open_egress
from daemon.engine.registry import Registry
from daemon.engine.scheduler import Scheduler
from daemon.methods import all_methods
from daemon.paths import Paths
from daemon.pluginhost.host import PluginHost
from daemon.server import Server
from daemon.vault import vault_path
from daemon.vault.service import VaultService, keep_retention

log = logging.getLogger("hearth")


class StartupError(Exception):
    """The daemon cannot start; the message says why and what to do."""


class AlreadyRunning(StartupError):
    """Another daemon holds the lock: it serves, or it is still starting."""


def claim_socket(path: Path) -> tuple[IO[str], Listener]:
    """Take the daemon lock, then the listening socket: inherited or bound.

    The lock (flock, released by the kernel when we die) is what makes us the one
    daemon, however we were started. A socket passed by systemd or launchd is checked
    and used as is (see daemon.activation); otherwise a socket file without a live
    lock holder is stale and is replaced by ours.
    """
    fd = os.open(path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    lock = os.fdopen(fd, "r+")  # held for our lifetime; the kernel drops the flock if we die
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise AlreadyRunning(f"a Hearth daemon is already running on {path}") from None
    try:
        inherited = inherited_socket(path)
        if inherited is not None:
            return lock, Listener(inherited, inherited=True)
        _clear_stale(path)
        return lock, Listener(bind_socket(path), inherited=False)
    except (StartupError, WrongSocket) as exc:
        lock.close()
        if isinstance(exc, WrongSocket):
            log.error("%s", exc)
            raise StartupError(str(exc)) from None
        raise


def _clear_stale(path: Path) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISSOCK(st.st_mode):
        raise StartupError(f"{path} exists and is not a socket; refusing to replace it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError:
        os.unlink(path)  # stale: its daemon is gone
    else:
        raise StartupError(f"another process answers on {path}; refusing to take it over")
    finally:
        probe.close()


def setup_logging(paths: Paths, verbose: bool) -> None:
    handler = logging.FileHandler(paths.logs / "daemon.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)


async def serve(paths: Paths, config: Config, listener: Listener) -> None:
    # The egress first (its socket guard), closed last (the audit log's final checkpoint).
    with open_egress(paths) as egress, open(paths.logs / "runner.log", "ab") as runner_log:
        scheduler = Scheduler(
            keep_alive=config.keep_alive,
            queue_size=config.queue_size,
            n_ctx=config.n_ctx,
            log_file=runner_log,
        )
        registry = Registry(paths.models, config.default_model)
        vault = VaultService(vault_path(paths))
        await asyncio.to_thread(vault.start)  # a passphrase vault waits for `vault.unlock`
        app = App(paths, config, registry, scheduler, runner_log, egress, vault)
        app.plugins = PluginHost(app)
        server = Server(app, all_methods())
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await server.start(listener.sock)
        how = "passed by the service manager" if listener.inherited else "bound"
        log.info("serving on %s (%s; pid %d)", paths.socket, how, os.getpid())
        sd_notify(f"READY=1\nSTATUS=serving on {paths.socket}")
        retention = asyncio.create_task(keep_retention(vault))
        await app.plugins.start()  # enabled plugins start in the background
        try:
            await stop.wait()
        finally:
            log.info("shutting down")
            sd_notify("STOPPING=1")
            await server.close()
            retention.cancel()
            await app.plugins.close()
            await scheduler.close()
            await asyncio.to_thread(vault.close)


def run(paths: Paths, config: Config, verbose: bool = False) -> None:
    paths.ensure()
    setup_logging(paths, verbose)  # first, so a refused socket is in the log too
    lock, listener = claim_socket(paths.socket)
    try:
        asyncio.run(serve(paths, config, listener))
    finally:
        listener.close(paths.socket)  # unlinks the socket file only if we bound it
        lock.close()
