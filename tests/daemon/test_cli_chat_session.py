"""Interactive `hearth chat` driven through a real pty: a conversation that outgrows the
context and a message too long for it are each one line on stderr, and the session
goes on answering."""

from __future__ import annotations

import contextlib
import os
import re
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Daemon, make_home, start_daemon

PROMPT = "› "
TIMEOUT = 240.0  # per answer: generous, the machine may be shared


class Pty:
    """A process on a pseudo-terminal, read with deadlines (never a fixed sleep)."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.master, slave = os.openpty()
        self.proc = subprocess.Popen(
            args, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True
        )
        os.close(slave)
        self.seen = ""

    def expect(self, pattern: str, timeout: float = TIMEOUT) -> str:
        """Read until ``pattern`` (a regex) appears in what came since the last match."""
        deadline = time.monotonic() + timeout
        while (match := re.search(pattern, self.seen)) is None:
            left = deadline - time.monotonic()
            if left <= 0 or (self.proc.poll() is not None and not self._ready(0)):
                raise AssertionError(f"no {pattern!r} in {self.seen[-2000:]!r}")
            if self._ready(min(left, 1.0)):
                with contextlib.suppress(OSError):  # EIO: the other end closed
                    self.seen += os.read(self.master, 65536).decode(errors="replace")
        before, self.seen = self.seen[: match.end()], self.seen[match.end() :]
        return before

    def _ready(self, timeout: float) -> bool:
        return bool(select.select([self.master], [], [], timeout)[0])

    def send(self, line: str) -> None:
        os.write(self.master, line.encode() + b"\n")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)


@pytest.fixture
def small_context() -> Iterator[Daemon]:
    """A daemon whose model has a 512-token context, so a few messages fill it."""
    home = make_home("keep_alive = -1\nn_ctx = 512\nmax_tokens = 16\n")
    daemon = start_daemon(home)
    yield daemon
    daemon.stop()
    shutil.rmtree(home, ignore_errors=True)


def paragraph(n: int) -> str:
    """~150 tokens on one line (a terminal line holds at most 4,095 bytes)."""
    return f"Message {n}. " + " ".join(
        f"The {word} in the story number {n} was quite remarkable." for word in
        ("garden", "river", "teacher", "bridge", "winter", "market", "letter", "lamp",
         "window", "boat", "song", "road", "field")
    )  # fmt: skip


def test_interactive_chat_survives_a_full_context_and_a_too_long_message(
    small_context: Daemon, tmp_path: Path
) -> None:
    chat = Pty([sys.executable, "-m", "daemon", "chat", "--temperature", "0"], small_context.env)
    try:
        chat.expect(re.escape(PROMPT))
        notices = 0
        for n in range(5):  # ~170 tokens a turn: the 512-token context overflows by turn 3
            chat.send(paragraph(n))
            answer = chat.expect(re.escape(PROMPT))
            notices += "longer than the model's context" in answer
            assert "hearth:" not in answer, answer
        assert notices >= 1

        chat.send("word " * 700)  # larger than the whole context on its own
        answer = chat.expect(re.escape(PROMPT))
        assert re.search(r"hearth: the message is too long .* Cut at least \d+ tokens", answer)
        assert chat.proc.poll() is None  # still in the session

        chat.send("Say hello.")
        answer = chat.expect(re.escape(PROMPT))
        reply = answer.split("Say hello.", 1)[1]
        assert re.search(r"\w", reply) and "hearth:" not in reply

        os.write(chat.master, b"\x04")  # Ctrl+D quits
        assert chat.proc.wait(30) == 0
    finally:
        chat.close()
    with small_context.client() as client:
        conversations = client.call("conversations.list")["conversations"]
    # One conversation, every answered turn stored (the too-long message was not).
    assert [c["messages"] for c in conversations] == [12]


def test_a_one_shot_chat_that_loops_says_why_it_stopped(small_context: Daemon) -> None:
    email = "Write a short, polite email asking my landlord to fix the heating."
    done = subprocess.run(
        [sys.executable, "-m", "daemon", "chat", "--no-store", "--temperature", "0",
         "--repeat-penalty", "1", "--max-tokens", "450", email],
        env=small_context.env, capture_output=True, text=True, timeout=TIMEOUT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "[stopped: the answer began to repeat itself]" in done.stderr
    assert done.stdout.strip()
