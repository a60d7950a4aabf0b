"""One plugin's process, supervised: start it sandboxed, run one invocation at a time,
kill it past its timeout, restart it with backoff after a crash.

Each *life* of the process has its own socketpair, pids cgroup and reader task. The
daemon end of the socketpair serves the plugin's ``ctx`` requests (``Serve``, given by
the host: it checks the plugin's permissions) and carries our ``setup`` and ``invoke``
requests. Every event — started, crashed, killed, a limit hit — goes to the plugin's
log and is counted for ``hearth plugins list``; the daemon's log gets the same without
any plugin output.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from daemon.errors import (
    HearthError,
    InvalidParams,
    NotAvailable,
    PluginFailed,
    PluginLimit,
    from_rpc,
)
from daemon.pluginhost import sandbox
from daemon.pluginhost.logbook import PluginLog
from daemon.pluginhost.manifest import Manifest, Permissions, expand
from daemon.pluginhost.pids import PidsCgroup

log = logging.getLogger(__name__)

Serve = Callable[[str, dict[str, Any]], Awaitable[Any]]
SETUP_TIMEOUT = 60.0
MAX_LINE = 32 << 20
BACKOFF_MAX = 60.0
STABLE_AFTER = 60.0  # a life this long resets the crash backoff
MAX_STDERR_LINES = 1000  # per life, into the plugin's log


@dataclass
class Counters:
    starts: int = 0
    crashes: int = 0
    timeouts: int = 0
    limit_hits: int = 0
    invocations: int = 0
    failures: int = 0


@dataclass(eq=False)
class Life:
    proc: asyncio.subprocess.Process
    writer: asyncio.StreamWriter
    cgroup: PidsCgroup | None
    started: float = field(default_factory=time.monotonic)
    pending: dict[str, asyncio.Future[Any]] = field(default_factory=dict)
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    answers: set[asyncio.Task[Any]] = field(default_factory=set)  # ctx requests being served
    ending: str | None = None  # why the host ended it (then it is not a crash)
    ready: bool = False  # set up: dying before that is a failed start, not a crash

    def send(self, obj: dict[str, Any]) -> None:
        if not self.writer.is_closing():
            self.writer.write(json.dumps(obj, separators=(",", ":")).encode() + b"\n")


class PluginProcess:
    """The supervised process of one enabled plugin."""

    def __init__(
        self,
        manifest: Manifest,
        granted: Permissions,
        *,
        data_dir: Path,
        home: Path,
        serve: Serve,
        logbook: PluginLog,
        disable: list[str] | None = None,
    ) -> None:
        self.manifest = manifest
        self.granted = granted
        self.data_dir = data_dir
        self.home = home
        self.serve = serve
        self.log = logbook
        self.disable = disable or []
        self.state = "stopped"
        self.problem: str | None = None  # the last thing that went wrong, for `list`
        self.sandbox: dict[str, Any] | None = None
        self.described: dict[str, Any] = {"commands": [], "triggers": []}
        self.counters = Counters()
        self.life: Life | None = None
        self.on_ready: Callable[[PluginProcess], None] | None = None
        self._lock = asyncio.Lock()  # one invocation at a time
        self._starting: asyncio.Lock = asyncio.Lock()
        self._ids = itertools.count(1)
        self._crash_streak = 0
        self._restart: asyncio.TimerHandle | None = None
        self._closed = False

    @property
    def id(self) -> str:
        return self.manifest.id

    # -- lives -----------------------------------------------------------------------

    async def start(self) -> None:
        """Start a life unless one runs. Raises NotAvailable (sandbox) or PluginFailed."""
        async with self._starting:
            if self.life is not None or self._closed:
                return
            if self._restart is not None:
                self._restart.cancel()
                self._restart = None
            self.state = "starting"
            try:
                await self._spawn()
            except HearthError as exc:
                self.state = "refused" if isinstance(exc, NotAvailable) else "failed"
                self.problem = exc.message
                self.log.add("host", f"not started: {exc.message}", "error")
                log.warning("plugin %s not started (%s)", self.id, exc.kind)
                raise

    async def _spawn(self) -> None:
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        ours, theirs = socket.socketpair()
        limits = asdict(self.manifest.limits)
        cgroup = None
        if "cgroup" not in self.disable:
            name = f"{self.id}-{os.getpid()}-{next(self._ids)}"
            cgroup = PidsCgroup.create(name, limits["processes"])
        env = {
            "PATH": os.defpath,
            "HOME": str(self.home),
            "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
            "PYTHONNOUSERSITE": "1",
        }
        if os.environ.get("PYTHONPATH"):
            env["PYTHONPATH"] = os.environ["PYTHONPATH"]
        spec = sandbox.plan(
            folder=self.manifest.folder,
            data_dir=self.data_dir,
            read=[expand(p, self.home) for p in self.granted.files_read],
            write=[expand(p, self.home) for p in self.granted.files_write],
            limits=limits,
            cgroup=cgroup is not None,
            disable=self.disable,
        )
        argv = [sys.executable, "-m", "daemon.pluginhost.child", str(theirs.fileno())]
        if sys.platform == "darwin":
            profile = sandbox.macos_profile(spec, sys.executable)
            argv = ["/usr/bin/sandbox-exec", "-p", profile, *argv]
            env[sandbox.SANDBOX_EXEC_ENV] = "1"
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                pass_fds=(theirs.fileno(),),
                env=env,
                cwd=self.data_dir,
                start_new_session=True,
            )
        except OSError as exc:
            ours.close()
            if cgroup is not None:
                cgroup.remove()
            raise PluginFailed(f"{self.id} could not be started: {exc}", plugin=self.id) from exc
        finally:
            theirs.close()
        if cgroup is not None:
            try:
                cgroup.add(proc.pid)
            except OSError:
                cgroup.remove()
                cgroup = None
                spec["cgroup"] = False  # the child then says which process limit it has
        reader, writer = await asyncio.open_unix_connection(sock=ours, limit=MAX_LINE)
        life = Life(proc, writer, cgroup)
        self.life = life
        self.counters.starts += 1
        self._watch(life, self._read(life, reader))
        assert proc.stderr is not None
        self._watch(life, self._stderr(proc.stderr))
        self._watch(life, self._reap(life))
        setup = {
            "id": self.id,
            "entry": str(self.manifest.entry_path),
            "data_dir": str(self.data_dir),
            "sandbox": spec,
        }
        try:
            ready = await asyncio.wait_for(self._request(life, "setup", setup), SETUP_TIMEOUT)
        except TimeoutError:
            await self._end(life, "setup timed out")
            raise PluginFailed(f"{self.id} did not start within {SETUP_TIMEOUT:.0f} s") from None
        except BaseException:
            await self._end(life, "setup failed")
            raise
        life.ready = True
        self.sandbox = ready["sandbox"]
        self.described = {"commands": ready["commands"], "triggers": ready["triggers"]}
        self._check_triggers()
        self.state = "running"
        missing = ready["sandbox"]["missing"]
        note = f" (degraded: no {', '.join(missing)})" if missing else ""
        self.log.add("host", f"started, pid {proc.pid}; sandbox: {self._layers()}{note}")
        log.info("plugin %s started (pid %d)%s", self.id, proc.pid, note)
        if self.on_ready is not None:
            self.on_ready(self)

    def _layers(self) -> str:
        layers = (self.sandbox or {}).get("layers", {})
        return "; ".join(f"{k}: {v}" for k, v in layers.items())

    def _check_triggers(self) -> None:
        """A file trigger must watch inside a granted read path."""
        granted = [expand(p, self.home) for p in self.granted.files_read]
        for trigger in self.described["triggers"]:
            if trigger["kind"] != "file":
                continue
            path = expand(trigger["path"], self.home)
            if not any(path == g or g in path.parents for g in granted):
                raise InvalidParams(
                    f"{self.id} watches {trigger['path']}, which its manifest does not let it "
                    "read: add it to files.read",
                    field="permissions.files.read",
                )

    def _watch(self, life: Life, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        life.tasks.add(task)
        task.add_done_callback(life.tasks.discard)

    async def _request(self, life: Life, method: str, params: dict[str, Any]) -> Any:
        rid = f"h{next(self._ids)}"
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        life.pending[rid] = future
        life.send({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
        try:
            return await future
        finally:
            life.pending.pop(rid, None)

    async def _read(self, life: Life, reader: asyncio.StreamReader) -> None:
        """Answers to our requests, and the plugin's ctx requests (served concurrently)."""
        while True:
            try:
                line = await reader.readline()
            except (ValueError, ConnectionError, asyncio.LimitOverrunError):
                line = b""
            if not line:
                break
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if not isinstance(msg, dict):
                continue
            if "method" in msg:
                task = asyncio.ensure_future(self._answer(life, msg))
                life.answers.add(task)
                task.add_done_callback(life.answers.discard)
                continue
            future = life.pending.get(str(msg.get("id")))
            if future is None or future.done():
                continue
            if isinstance(msg.get("error"), dict):
                future.set_exception(from_rpc(msg["error"]))
            else:
                future.set_result(msg.get("result"))
        life.writer.close()

    async def _answer(self, life: Life, msg: dict[str, Any]) -> None:
        rid = msg.get("id")
        params = msg.get("params")
        try:
            if not isinstance(params, dict) or not isinstance(msg["method"], str):
                raise InvalidParams("a request needs a method name and params object")
            result = await self.serve(msg["method"], params)
            life.send({"jsonrpc": "2.0", "id": rid, "result": result})
        except HearthError as exc:
            life.send({"jsonrpc": "2.0", "id": rid, "error": exc.to_rpc()})
        except Exception as exc:
            log.exception("plugin %s: serving %s failed", self.id, msg.get("method"))
            life.send(
                {
                    "jsonrpc": "2.0",
                    "id": rid,
                    "error": PluginFailed(f"internal error: {type(exc).__name__}").to_rpc(),
                }
            )

    async def _stderr(self, stream: asyncio.StreamReader) -> None:
        count = 0
        while line := await stream.readline():
            count += 1
            if count <= MAX_STDERR_LINES:
                self.log.add("stderr", line.decode("utf-8", "replace").rstrip(), "warning")
        if count > MAX_STDERR_LINES:
            self.log.add("host", f"{count - MAX_STDERR_LINES} more stderr lines dropped", "warning")

    async def _reap(self, life: Life) -> None:
        """When a life ends: fail what waits on it, and restart with backoff if it crashed."""
        code = await life.proc.wait()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(life.proc.pid, signal.SIGKILL)  # what it left behind dies with it
        if life.cgroup is not None:
            await asyncio.to_thread(life.cgroup.remove)
        for task in life.answers:
            task.cancel()  # a model call for a dead plugin is not worth finishing
        others = [t for t in life.tasks if t is not asyncio.current_task()]
        await asyncio.wait(others, timeout=5.0) if others else None
        how = self.describe_exit(code)
        for future in life.pending.values():
            if not future.done():
                future.set_exception(self._death(life, code, how))
        if self.life is life:
            self.life = None
        if life.ending is not None or self._closed or not life.ready:
            return
        if code == -signal.SIGXCPU:  # its CPU time is up: a limit, not a crash
            self.problem = self._limit_message("cpu")
            self.log.add("host", self.problem, "error")
            self.state = "restarting"
            self._restart_now()
            return
        lived = time.monotonic() - life.started
        self._crash_streak = 0 if lived >= STABLE_AFTER else self._crash_streak + 1
        delay = min(BACKOFF_MAX, 2.0 ** (self._crash_streak - 1)) if self._crash_streak else 0.0
        self.counters.crashes += 1
        self.state = "backoff"
        self.problem = f"crashed ({how}); restarting in {delay:.0f} s"
        self.log.add("host", self.problem, "error")
        log.warning("plugin %s crashed (%s); restart in %.0f s", self.id, how, delay)
        self._restart = asyncio.get_running_loop().call_later(delay, self._restart_now)

    def _restart_now(self) -> None:
        self._restart = None
        task = asyncio.ensure_future(self.start())
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    @staticmethod
    def describe_exit(code: int) -> str:
        if code < 0:
            try:
                return f"signal {signal.Signals(-code).name}"
            except ValueError:
                return f"signal {-code}"
        return f"exit status {code}"

    def _death(self, life: Life, code: int, how: str) -> HearthError:
        if life.ending:
            return PluginLimit(life.ending, plugin=self.id)
        if code == -signal.SIGXCPU:
            return PluginLimit(self._limit_message("cpu"), plugin=self.id, limit="cpu")
        return PluginFailed(f"the {self.id} plugin process died ({how})", plugin=self.id)

    async def _end(self, life: Life, why: str) -> None:
        """Kill a life (the process, and every process it made)."""
        life.ending = life.ending or why
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(life.proc.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            life.proc.kill()
        if life.cgroup is not None:
            await asyncio.to_thread(life.cgroup.kill)
        with contextlib.suppress(asyncio.CancelledError):
            await life.proc.wait()
        if self.life is life:
            self.life = None

    # -- invocations -----------------------------------------------------------------

    async def invoke(self, params: dict[str, Any]) -> Any:
        """Run a command or trigger in the plugin; its result, or the error it ended with."""
        async with self._lock:
            await self.start()
            life = self.life
            if life is None:
                raise PluginFailed(f"{self.id} is not running: {self.problem or 'stopped'}")
            self.counters.invocations += 1
            timeout = self.manifest.limits.timeout
            hits = life.cgroup.hits() if life.cgroup else 0
            try:
                return await asyncio.wait_for(self._request(life, "invoke", params), timeout)
            except TimeoutError:
                self.counters.timeouts += 1
                why = f"{self.id} ran past its {timeout:g} s timeout and was killed"
                await self._limit(life, why, "timeout")
                raise PluginLimit(why, plugin=self.id, limit="timeout") from None
            except PluginLimit as exc:
                limit = str(exc.data.get("limit"))
                # From the daemon's side (SIGXCPU) it is worded already; from the child, not.
                why = exc.message if "plugin" in exc.data else self._limit_message(limit)
                await self._limit(life, why, limit)
                raise PluginLimit(why, plugin=self.id, limit=limit) from None
            except HearthError as exc:
                if life.cgroup and life.cgroup.hits() > hits:  # a fork was refused meanwhile
                    why = self._limit_message("processes")
                    await self._limit(life, why, "processes")
                    raise PluginLimit(why, plugin=self.id, limit="processes") from exc
                self.counters.failures += 1
                raise

    def _limit_message(self, limit: str) -> str:
        limits = self.manifest.limits
        what = {
            "memory": f"its memory limit ({limits.memory_mb} MiB)",
            "processes": f"its process limit ({limits.processes} processes and threads)",
            "cpu": f"its CPU time limit ({limits.cpu_seconds} s)",
        }.get(limit, f"its {limit} limit")
        return f"{self.id} hit {what} and was stopped; it restarts for its next call"

    async def _limit(self, life: Life, why: str, limit: Any) -> None:
        """A limit was hit: log it, and end this life so nothing it left keeps running."""
        self.counters.limit_hits += limit != "timeout"
        self.problem = why
        self.log.add("host", why, "error")
        log.warning("plugin %s: limit hit (%s)", self.id, limit)
        await self._end(life, why)
        self.state = "restarting"
        self._restart_now()  # a fresh life, so its triggers keep working

    async def stop(self) -> None:
        """Stop for good (disable, remove, reload, shutdown)."""
        self._closed = True
        if self._restart is not None:
            self._restart.cancel()
        life = self.life
        if life is not None:
            life.send({"jsonrpc": "2.0", "method": "stop", "params": {}})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(life.proc.wait()), 2.0)
            await self._end(life, "stopped")
        self.state = "stopped"

    def status(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "pid": self.life.proc.pid if self.life else None,
            "problem": self.problem,
            "sandbox": self.sandbox,
            **asdict(self.counters),
        }

    @staticmethod
    def idle_status(state: str) -> dict[str, Any]:
        """status() of a plugin that has no process."""
        return {"state": state, "pid": None, "problem": None, "sandbox": None, **asdict(Counters())}
