"""Stress: 8 clients race chats, cancels, loads, unloads and disconnects (issue 20).

For HEARTH_STRESS_SECONDS (60) with keep_alive at 0.05 s, so runners start and stop all
the time, each client opens connection after connection and, picked by a seeded random
generator (HEARTH_STRESS_SEED), pipelines a few requests (chats, some as notifications;
rewrites; models.load and models.unload; status), cancels one of its chats (as a request
or a notification) after a random pause, then either reads every reply or hangs up
without reading. Every request read must get exactly one reply, and no runner_failed or
internal error; afterwards every runner must be gone, in /proc as in `status`, and the
daemon's log must show no unhandled exception.
"""

from __future__ import annotations

import itertools
import os
import random
import shutil
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.conftest import Daemon, make_home, start_daemon
from tests.daemon.support import (
    Lines,
    default_model,
    line,
    raw,
    runner_pids,
    unhandled,
    until,
    zombies,
)

SEED = int(os.environ.get("HEARTH_STRESS_SEED", "20"))
SECONDS = float(os.environ.get("HEARTH_STRESS_SECONDS", "60"))
CLIENTS = 8
WORDS = ["dragon", "kettle", "harbour", "lantern", "orchard", "violin", "glacier"]


@dataclass
class Tally:
    """What the clients did and got, for the failure message and the summary."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    sent: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    sessions: int = 0
    hang_ups: int = 0

    def add(self, counter: str, key: str) -> None:
        with self.lock:
            getattr(self, counter)[key] += 1

    def count(self, name: str) -> None:
        with self.lock:
            setattr(self, name, getattr(self, name) + 1)


def request(rng: random.Random, model: str) -> tuple[str, dict[str, Any]]:
    options = {"max_tokens": rng.randint(1, 6), "temperature": rng.choice([0, 0.7])}
    text = f"Say something about a {rng.choice(WORDS)}."
    kind = rng.choices(["chat", "rewrite", "load", "unload", "status"], [8, 2, 1, 0.5, 1])[0]
    if kind == "chat":
        messages = [{"role": "user", "content": text}]
        return "chat", {"messages": messages, "store": False, "options": options}
    if kind == "rewrite":
        return "rewrite", {"text": text, "preset": rng.choice(["proofread", "concise"]),
                           "options": options}  # fmt: skip
    if kind in ("load", "unload"):
        return f"models.{kind}", {"model": model}
    return "status", {}


def check(method: str, reply: dict[str, Any]) -> str:
    """The reply's outcome, as a short name; fails on any it must never be."""
    if "error" in reply:
        kind = reply["error"]["data"]["kind"]
        # a load the unload of a concurrent client stopped while it started
        assert method == "models.load" and kind == "cancelled", (method, reply["error"])
        return f"{method}:{kind}"
    result = reply["result"]
    if method in ("chat", "rewrite"):
        assert result["finish_reason"] in ("stop", "length", "cancelled"), result
        return f"{method}:{result['finish_reason']}"
    if method == "cancel":
        return f"cancel:{result['cancelled']}"
    return method


def session(daemon: Daemon, rng: random.Random, model: str, tally: Tally) -> None:
    """One connection: a few pipelined requests, maybe a cancel, then read or hang up."""
    ids = itertools.count(1)
    expected: dict[int, str] = {}  # id -> method, for every request that must get a reply
    chats: list[int] = []
    with raw(daemon, timeout=600) as sock:
        lines = Lines(sock)
        for _ in range(rng.randint(1, 4)):
            method, params = request(rng, model)
            rid = next(ids)
            if method in ("chat", "rewrite"):
                chats.append(rid)
            if method == "chat" and rng.random() < 0.1:
                sock.sendall(line(..., method, params))  # a notification: no reply
                tally.add("sent", "chat (notification)")
                continue
            sock.sendall(line(rid, method, params))
            expected[rid] = method
            tally.add("sent", method)
        if chats and rng.random() < 0.5:
            time.sleep(rng.uniform(0, 0.4))
            target = rng.choice(chats)
            if rng.random() < 0.5:
                sock.sendall(line(..., "cancel", {"id": target}))
            else:
                rid = next(ids)
                sock.sendall(line(rid, "cancel", {"id": target}))
                expected[rid] = "cancel"
            tally.add("sent", "cancel")
        if rng.random() < 0.2:  # hang up with requests in flight
            time.sleep(rng.uniform(0, 0.6))
            tally.count("hang_ups")
            return
        sync = next(ids)  # replies come in completion order: one more, answered last
        while len({m.get("id") for m in lines.replies} & expected.keys()) < len(expected):
            lines.until(lambda m: True)
        sock.sendall(line(sync, "status"))
        lines.reply_to(sync)
    counts = Counter(m.get("id") for m in lines.replies)
    assert counts.pop(sync) == 1
    assert counts == Counter(expected.keys()), f"replies per id {counts}, asked {expected}"
    for reply in lines.replies:
        if reply.get("id") != sync:
            tally.add("outcomes", check(expected[reply["id"]], reply))
    tally.count("sessions")


@pytest.mark.timeout(SECONDS + 1500)  # draining is slow on a loaded machine
def test_eight_clients_racing_every_lifecycle_path_get_one_reply_each_and_leak_nothing() -> None:
    home = make_home("keep_alive = 0.05\n")
    daemon = start_daemon(home)
    tally = Tally()
    failures: list[str] = []
    try:
        model = default_model(daemon)
        deadline = time.monotonic() + SECONDS

        def client(i: int) -> None:
            rng = random.Random(f"{SEED}:{i}")
            try:
                while time.monotonic() < deadline:
                    session(daemon, rng, model, tally)
            except BaseException as exc:  # reported below, with the seed
                failures.append(f"client {i}: {type(exc).__name__}: {exc}")

        threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(SECONDS + 900)
        assert not any(t.is_alive() for t in threads), "a client is stuck waiting for a reply"
        summary = (
            f"seed {SEED}: {tally.sessions} sessions, {tally.hang_ups} hang-ups, "
            f"sent {dict(tally.sent)}, got {dict(tally.outcomes)}"
        )
        print(summary)
        assert not failures, f"{summary}\n" + "\n".join(failures)
        assert tally.sessions + tally.hang_ups >= CLIENTS and tally.outcomes  # all took part
        with daemon.client() as c:

            def settled() -> bool:
                gone = not c.call("status")["runners"]
                return gone and not runner_pids(daemon) and not zombies(daemon)

            until(settled, f"every runner to stop ({runner_pids(daemon)} in /proc)", 120)
            assert c.call("status")["queue"] == 0
        assert unhandled(daemon) == []
    finally:
        daemon.stop()
        out = daemon.proc.stdout.read().decode(errors="replace") if daemon.proc.stdout else ""
        shutil.rmtree(home, ignore_errors=True)
    assert "Traceback" not in out, out
