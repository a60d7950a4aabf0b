"""`hearth daemon`: claim the socket, build the services, serve until a signal."""

from __future__ import annotations

import asyncio
import fcntl
import functools
import logging
import os
import signal
import socket
import stat
from pathlib import Path
from typing import IO, TYPE_CHECKING

from daemon.activation import Listener, WrongSocket, bind_socket, inherited_socket, sd_notify
from daemon.app import App
from daemon.config import Config
from daemon.egress import guard
from daemon.engine.confinement import RunnerSandbox
from daemon.engine.memory import MemoryGuard
from daemon.engine.process import RunnerProcess
from daemon.engine.registry import Registry
from daemon.engine.scheduler import Scheduler
from daemon.hardening import no_core_dumps
from daemon.methods import session
from daemon.paths import Paths
from daemon.rpc import Handler
from daemon.server import Server

if TYPE_CHECKING:
    from daemon.egress.service import Egress
    from daemon.vault.service import VaultService

log = logging.getLogger("hearth")

EGRESS_WAIT = 1.0  # seconds other methods wait for the audit log before serving without it


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


def _services(paths: Paths) -> tuple[Egress, VaultService, dict[str, Handler]]:
    """Import and build what only the methods past ``status`` need (run in a thread).

    The egress and the vault start opening in threads of their own: both ask the OS
    keychain for keys, and a keychain may take seconds, or hang."""
    from daemon.egress.service import Egress
    from daemon.methods import all_methods
    from daemon.vault import vault_path
    from daemon.vault.service import VaultService

    egress = Egress(paths.data / "egress", paths.config / "network.json")
    egress.open(background=True)
    vault = VaultService(vault_path(paths))
    vault.start()  # a passphrase vault waits for `vault.unlock`
    return egress, vault, all_methods()


async def serve(paths: Paths, config: Config, listener: Listener) -> None:
    """Serve on the socket at once, so `status` answers; then load the rest.

    Requests for other methods wait until they are loaded (a fraction of a second). The
    vault and the egress never hold up start-up: they report "starting" meanwhile."""
    guard.install()  # first: nothing may open a socket unguarded (refusals recorded once up)
    sandbox = RunnerSandbox(config.allow_unconfined_runners)  # records to the log once open
    with open(paths.logs / "runner.log", "ab") as runner_log:
        scheduler = Scheduler(
            keep_alive=config.keep_alive,
            queue_size=config.queue_size,
            n_ctx=config.n_ctx,
            log_file=runner_log,
            memory=(memory := MemoryGuard(config.memory_low_mb)),
            spawn=functools.partial(
                RunnerProcess.start, sandbox=sandbox, background_nice=config.background_nice
            ),
        )
        registry = Registry(paths.models, config.default_model)
        app = App(paths, config, registry, scheduler, runner_log, memory=memory, sandbox=sandbox)
        methods: dict[str, Handler] = {}
        session.register(methods.__setitem__)
        server = Server(app, methods, complete=False)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await server.start(listener.sock)
        how = "passed by the service manager" if listener.inherited else "bound"
        log.info("serving on %s (%s; pid %d)", paths.socket, how, os.getpid())
        sd_notify(f"READY=1\nSTATUS=serving on {paths.socket}")
        retention: asyncio.Task[None] | None = None
        watcher = asyncio.create_task(memory.watch(scheduler))
        services: tuple[Egress, VaultService, dict[str, Handler]] | None = None
        try:
            services = await asyncio.to_thread(_services, paths)
            app.egress, app.vault, rest = services
            sandbox.sink = app.egress.record  # runners' refusals, into the audit log
            # An audit log that opens at once is open before net.* and pulls are served.
            await asyncio.to_thread(app.egress.opened.wait, EGRESS_WAIT)
            from daemon.pluginhost.host import PluginHost
            from daemon.vault.service import keep_retention

            app.plugins = PluginHost(app)
            # The plugin list is read before plugins.* are served; enabled plugins then
            # start in the background.
            await app.plugins.start()
            app.ready = True
            server.add_methods(rest)
            retention = asyncio.create_task(keep_retention(app.vault))
            await stop.wait()
        finally:
            log.info("shutting down")
            sd_notify("STOPPING=1")
            await server.close()
            watcher.cancel()
            if retention is not None:
                retention.cancel()
            if app.plugins is not None:
                await app.plugins.close()
            await scheduler.close()
            if services is not None:
                await asyncio.to_thread(app.vault.close)
                await asyncio.to_thread(app.egress.close)  # last: the final checkpoint


def run(paths: Paths, config: Config, verbose: bool = False) -> None:
    no_core_dumps()  # its memory holds keys and conversations
    dropped = guard.drop_proxy_settings(os.environ)  # a proxy only through the gateway
    paths.ensure()
    setup_logging(paths, verbose)  # first, so a refused socket is in the log too
    lock, listener = claim_socket(paths.socket)
    try:
        if dropped:
            log.info("ignoring the proxy settings in the environment: %s", ", ".join(dropped))
        asyncio.run(serve(paths, config, listener))
    finally:
        listener.close(paths.socket)  # unlinks the socket file only if we bound it
        lock.close()
