"""Kill -9 the daemon at random moments during a stream of chats: nothing acknowledged is lost.

One iteration is one daemon life ended by SIGKILL. Each life: start `hearth daemon` on
the lane's HEARTH_HOME, unlock its vault (a passphrase vault with cheap scrypt
parameters, so unlocking costs milliseconds), check the conversations the previous life
touched, then send chats one after another — new conversations and continuations of
earlier ones (so history is replayed across restarts), one token each — and SIGKILL the
daemon. Three lives in five are killed at a random point of the chat or two after their
first answer (mid-stream: during generation, the vault's commit, or between commit and
reply). One in five is killed the instant its first answer arrives, which would catch
a reply sent before its commit. One in five is killed at any moment from the spawn on
(startup, unlock, runner load).

After each kill the vault file must pass PRAGMA integrity_check; at the next start every
message whose chat response was received must be stored, in order, and nothing else may
be stored but the turn that was in flight at the kill. A life costs a daemon start, a
runner start and a chat or two (~1.2 s on 2 idle cores), so two lanes (separate homes)
take turns: one starts its daemon and checks its vault while the other runs the model.

    .venv/bin/python bench/faults.py [--kills 1000] [--lanes 2] [--seed N]

tests/daemon/vault/test_daemon_faults.py runs the same loop with 200 kills.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from daemon.client import Client
from daemon.errors import DaemonUnavailable, HearthError
from daemon.paths import Paths
from daemon.vault import PassphraseKeySource, Vault, vault_path

PASSPHRASE = "faults bench passphrase"
CHEAP_SCRYPT = 2**10  # real scrypt, cheap parameters (recorded in the vault header)
MAX_MESSAGES = 6  # continue a conversation until it has this many messages
ANYTIME = 0.2  # share of lives killed at any moment rather than mid-stream
ON_ACK = 0.2  # share killed the instant their first answer arrives (a reply before a commit)
LIFE_LIMIT = 120.0  # a life longer than this is a hang: reported, then killed


@dataclass
class Report:
    kills: int = 0
    mid_stream: int = 0  # kills after at least one answer in that life
    on_ack: int = 0  # of those, kills the instant an answer arrived
    acked: int = 0  # chat responses received
    in_flight_stored: int = 0  # turns stored whose response the kill swallowed
    in_flight_lost: int = 0  # turns in flight at a kill that were not stored (allowed)
    integrity_failures: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)  # acknowledged but missing: must stay empty
    strays: list[str] = field(default_factory=list)  # stored but never sent: must stay empty
    stalls: list[str] = field(default_factory=list)  # lives that hung: must stay empty
    seconds: float = 0.0

    def add(self, other: Report) -> None:
        counts = ("kills", "mid_stream", "on_ack", "acked", "in_flight_stored", "in_flight_lost")
        for name in counts:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.integrity_failures += other.integrity_failures
        self.lost += other.lost
        self.strays += other.strays
        self.stalls += other.stalls


class Lane:
    """One HEARTH_HOME and what was acknowledged in it."""

    def __init__(self, number: int, seed: int) -> None:
        self.number = number
        self.rng = random.Random(seed)
        self.home = Path(tempfile.mkdtemp(prefix=f"hf{number}-", dir="/tmp"))
        self.env = {**os.environ, "HEARTH_HOME": str(self.home)}
        self.paths = Paths.from_env({"HEARTH_HOME": str(self.home)})
        self.paths.ensure()
        # A small context loads faster; every prompt here is short.
        (self.paths.config / "config.toml").write_text("n_ctx = 512\n")
        key = PassphraseKeySource(PASSPHRASE, n=CHEAP_SCRYPT)
        Vault.create(vault_path(self.paths), key).close()
        self.acked: dict[str, list[tuple[str, str]]] = {}  # conversation -> acknowledged messages
        self.in_flight: set[str] = set()  # user messages sent, response never received
        self.touched: set[str] = set()  # conversations written in the last life
        self.report = Report()
        self._sent = 0

    # -- one life ----------------------------------------------------------------------

    def life(self, model_turn: threading.Lock) -> None:
        """Start a daemon, chat until it is killed. ``model_turn``: one lane at a time runs
        a model (llama.cpp's threads spin; two runners on two cores crawl), while the
        other lane starts its daemon and checks its vault."""
        proc = self._spawn()
        hung: list[bool] = []

        def hang() -> None:
            hung.append(True)
            proc.kill()

        watchdog = threading.Timer(LIFE_LIMIT, hang)
        watchdog.start()
        draw = self.rng.random()
        anytime, on_ack = draw < ANYTIME, ANYTIME <= draw < ANYTIME + ON_ACK
        timer = None
        if anytime:  # startup, unlock, runner load, the first chats
            timer = threading.Timer(self.rng.uniform(0, 1.2), proc.send_signal, [signal.SIGKILL])
            timer.start()
        answered = False
        try:
            client = self._connect(proc)
            if client is not None:
                with client:
                    client.call("vault.unlock", {"passphrase": PASSPHRASE})
                    self._check(client, self.touched)
                    self.touched = set()
                    with model_turn:
                        client.call("models.load", {"model": "default"})
                        while True:
                            took = self._chat(client)
                            if on_ack:  # the answer is acknowledged: it must be stored
                                proc.send_signal(signal.SIGKILL)
                                self.report.on_ack += 1
                            elif not answered and not anytime:  # in the next chat or two
                                delay = self.rng.uniform(0, 1.2 * took)
                                timer = threading.Timer(delay, proc.send_signal, [signal.SIGKILL])
                                timer.start()
                            answered = True
        except (DaemonUnavailable, OSError, ValueError):
            pass  # the kill: the connection broke
        finally:
            watchdog.cancel()
            if timer is not None:
                timer.join()
            proc.kill()
            proc.wait()
        if hung:
            self.report.stalls.append(f"{self.home}: pid {proc.pid} lived over {LIFE_LIMIT:.0f} s")
        self.report.kills += 1
        self.report.mid_stream += answered
        self._integrity_check()

    def _spawn(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "daemon", "daemon"],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def _connect(self, proc: subprocess.Popen[bytes]) -> Client | None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return None  # killed before it answered
            try:
                return Client.connect(self.paths.socket, "faults")
            except DaemonUnavailable:
                time.sleep(0.01)
        raise RuntimeError(f"the daemon in {self.home} did not start within 60 s")

    def _chat(self, client: Client) -> float:
        """One chat turn; how long it took."""
        started = time.monotonic()
        open_ones = [c for c, msgs in self.acked.items() if len(msgs) < MAX_MESSAGES]
        conv = self.rng.choice(open_ones) if open_ones and self.rng.random() < 0.5 else None
        self._sent += 1
        content = f"lane {self.number} message {self._sent} {self.rng.random():.6f}"
        self.in_flight.add(content)
        if conv is not None:
            self.touched.add(conv)
        result = client.call(
            "chat",
            {
                "messages": [{"role": "user", "content": content}],
                "conversation_id": conv,
                "options": {"max_tokens": 1, "temperature": 0},
            },
        )
        self.in_flight.discard(content)  # answered: from here on it must be stored
        conv = result["conversation_id"]
        if not result["stored"] or conv is None:
            raise AssertionError(f"a chat was answered but not stored: {result}")
        self.touched.add(conv)
        turn = [("user", content)] + ([("assistant", result["text"])] if result["text"] else [])
        self.acked.setdefault(conv, []).extend(turn)
        self.report.acked += 1
        return time.monotonic() - started

    # -- checks ------------------------------------------------------------------------

    def _integrity_check(self) -> None:
        path = vault_path(self.paths)
        conn = sqlite3.connect(path)
        try:
            result = conn.execute("PRAGMA integrity_check").fetchone()[0]
        except sqlite3.Error as exc:
            result = f"{type(exc).__name__}: {exc}"
        finally:
            conn.close()
        if result != "ok":
            self.report.integrity_failures.append(f"{path}: {result}")

    def _check(self, client: Client, conversations: set[str]) -> None:
        """Acknowledged messages stored in order; nothing stored that was not sent."""
        listed = {c["id"] for c in client.call("conversations.list")["conversations"]}
        for conv in listed - set(self.acked):  # started by a turn the kill swallowed
            conversations.add(conv)
        for conv in conversations:
            try:
                messages = client.call("conversations.get", {"id": conv})["messages"]
            except DaemonUnavailable:
                raise  # killed during the check: the next life checks again
            except HearthError as exc:
                self.report.lost.append(f"{conv}: {exc.kind} {exc.message}")
                continue
            stored = [(m["role"], m["content"]) for m in messages]
            remaining = iter(stored)
            acked = self.acked.get(conv, [])
            if not all(msg in remaining for msg in acked):  # a subsequence, in order
                self.report.lost.append(f"{conv}: acknowledged {acked}, stored {stored}")
            extra = {c for r, c in stored if r == "user"} - {c for r, c in acked if r == "user"}
            self.report.strays += [f"{conv}: {c}" for c in extra - self.in_flight]
            self.report.in_flight_stored += len(extra & self.in_flight)
            self.in_flight -= extra
            # Later turns build on what is stored, the swallowed turn included.
            self.acked[conv] = stored

    def finish(self) -> None:
        """A last, clean life: check every conversation, then stop with SIGTERM."""
        proc = self._spawn()
        try:
            client = self._connect(proc)
            assert client is not None
            with client:
                client.call("vault.unlock", {"passphrase": PASSPHRASE})
                self._check(client, set(self.acked))
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
        self.report.in_flight_lost += len(self.in_flight)
        self._integrity_check()

    def close(self) -> None:
        shutil.rmtree(self.home, ignore_errors=True)


def run(kills: int, lanes: int = 2, seed: int | None = None, progress: bool = False) -> Report:
    """``kills`` daemon lives ended by SIGKILL, spread over ``lanes`` homes."""
    seed = random.randrange(2**32) if seed is None else seed
    started = time.monotonic()
    workers = [Lane(n, seed + n) for n in range(lanes)]
    errors: list[BaseException] = []

    model_turn = threading.Lock()

    counted = threading.Lock()
    shown = [0]

    def drive(lane: Lane, count: int) -> None:
        try:
            for _ in range(count):
                lane.life(model_turn)
                with counted:
                    done = sum(w.report.kills for w in workers)
                    if progress and done // 100 > shown[0]:
                        shown[0] = done // 100
                        print(f"{done} kills, {time.monotonic() - started:.0f} s", file=sys.stderr)
            lane.finish()
        except BaseException as exc:  # reported by the caller's thread
            errors.append(exc)

    threads = [
        threading.Thread(target=drive, args=(lane, kills // lanes + (n < kills % lanes)))
        for n, lane in enumerate(workers)
    ]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        for lane in workers:
            lane.close()
    if errors:
        raise errors[0]
    total = Report()
    for lane in workers:
        total.add(lane.report)
    total.seconds = time.monotonic() - started
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=1000)
    parser.add_argument("--lanes", type=int, default=2)
    parser.add_argument("--seed", type=int)
    args = parser.parse_args()
    seed = random.randrange(2**32) if args.seed is None else args.seed
    r = run(args.kills, args.lanes, seed, progress=True)
    print(f"seed {seed}, {args.lanes} lanes")
    print(f"kills                     {r.kills} ({r.mid_stream} after an answer in that life, "
          f"{r.on_ack} of them the instant it arrived)")  # fmt: skip
    print(f"answers acknowledged      {r.acked} (all must be stored)")
    print(f"in flight at a kill       {r.in_flight_stored} stored, {r.in_flight_lost} not")
    print(f"lost acknowledged         {len(r.lost)}")
    print(f"stored but never sent     {len(r.strays)}")
    print(f"integrity_check failures  {len(r.integrity_failures)}")
    print(f"hung lives                {len(r.stalls)}")
    print(f"time                      {r.seconds:.1f} s ({r.seconds / max(r.kills, 1):.2f} s/kill)")
    problems = r.lost + r.strays + r.integrity_failures + r.stalls
    for problem in problems[:10]:
        print(f"  {problem}")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
