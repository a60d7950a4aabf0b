"""`hearth models pull NAME`: a catalog model from a hub on 127.0.0.1, on the real daemon.

The daemon reads a catalog of our own (HEARTH_CATALOG) whose entries point at the local
hub: a GGUF file pinned by commit and SHA-256, one pinned to a branch only (its commit is
resolved once and the hub's hash checked and recorded), and an MLX folder. The daemon
stays offline: the user's consent to one download is what lets it out, and every call
is in the audit log under that consent.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from daemon import catalog
from daemon.errors import EgressDenied, EgressFailed, IntegrityError, InvalidParams
from daemon.paths import Paths
from tests.conftest import make_home
from tests.daemon.engine.tiny_models import write_gguf, write_mlx

from .daemon_support import Running, env_for, hearth, launch
from .hub import COMMIT, HubState, git_sha1, hub_handler

GGUF_REPO = "hearth-test/tiny-qwen-GGUF"
MLX_REPO = "hearth-test/tiny-qwen-mlx"
UNPINNED_REPO = "hearth-test/tiny-llama-GGUF"
MLX_FILES = ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]
HI = [{"role": "user", "content": "Hi"}]


def _entry(name: str, gguf: str, mlx: str, *, ram: int = 400) -> str:
    return f"""
[[models]]
name = "{name}"
family = "Tiny"
parameters = "0.5B"
description = "A tiny test model."
license = "apache-2.0"
license_url = "https://example.com/license"
gated = false
context_length = 2048
kv_cache_mb = 10
ram_mb = {ram}
rank = 1
tags = ["rewrite", "chat"]
[models.gguf]
{gguf}
quantization = "F32"
architecture = "qwen2"
size_mb = 200
[models.mlx]
{mlx}
quantization = "F32"
architecture = "qwen2"
size_mb = 200
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("catalog-files")
    gguf = write_gguf(folder / "tiny-qwen.gguf", "qwen2").read_bytes()
    llama = write_gguf(folder / "tiny-llama.gguf", "llama").read_bytes()
    mlx = write_mlx(folder / "mlx", "qwen2")
    out = {"gguf": gguf, "llama": llama}
    out.update({f"mlx/{f}": (mlx / f).read_bytes() for f in MLX_FILES})
    return out


@pytest.fixture(scope="module")
def hub_state(files: dict[str, bytes]) -> HubState:
    lfs = {
        f"{GGUF_REPO}/tiny-qwen.gguf": files["gguf"],
        f"{GGUF_REPO}/wrong-hash.gguf": files["gguf"],
        f"{UNPINNED_REPO}/tiny-llama.gguf": files["llama"],
        f"{MLX_REPO}/model.safetensors": files["mlx/model.safetensors"],
        f"{MLX_REPO}/tokenizer.json": files["mlx/tokenizer.json"],
    }
    git = {
        f"{MLX_REPO}/config.json": files["mlx/config.json"],
        f"{MLX_REPO}/tokenizer_config.json": files["mlx/tokenizer_config.json"],
        f"{MLX_REPO}/README.md": b"# not a model file: a folder pull leaves it\n",
    }
    return HubState(lfs=lfs, git=git)


@pytest.fixture(scope="module")
def hub(hub_state: HubState) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), hub_handler(hub_state))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def catalog_file(tmp_path_factory: pytest.TempPathFactory, files: dict[str, bytes]) -> Path:
    sha = hashlib.sha256(files["gguf"]).hexdigest()
    mlx = f'repo = "{MLX_REPO}"\nrevision = "main"\nrevision_verified = false'
    pinned = (f'repo = "{GGUF_REPO}"\nfile = "tiny-qwen.gguf"\nrevision = "{COMMIT}"\n'
              f'revision_verified = true\nsha256 = "{sha}"')  # fmt: skip
    wrong = (f'repo = "{GGUF_REPO}"\nfile = "wrong-hash.gguf"\nrevision = "{COMMIT}"\n'
             f'revision_verified = true\nsha256 = "{"ab" * 32}"')  # fmt: skip
    unpinned = (f'repo = "{UNPINNED_REPO}"\nfile = "tiny-llama.gguf"\nrevision = "main"\n'
                "revision_verified = false")  # fmt: skip
    text = "schema = 1\n" + "".join(
        [
            _entry("tiny-qwen", pinned, mlx),
            _entry("tiny-wrong", wrong, mlx),
            _entry("tiny-unpinned", unpinned, mlx),
        ]
    )
    path = tmp_path_factory.mktemp("catalog") / "catalog.toml"
    path.write_text(text)
    assert [e.name for e in catalog.load(path)] == ["tiny-qwen", "tiny-wrong", "tiny-unpinned"]
    return path


@pytest.fixture(scope="module")
def puller(catalog_file: Path) -> Iterator[Running]:
    """A daemon left offline (the default), reading the test catalog."""
    home = make_home("keep_alive = 0\n")
    daemon = launch(home, env=env_for(home, HEARTH_CATALOG=str(catalog_file)))
    yield daemon
    daemon.stop()
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(autouse=True)
def fresh_hub(hub_state: HubState) -> None:
    hub_state.requests.clear()
    hub_state.drops = 0
    hub_state.corrupt = False


def _cli(daemon: Running, catalog_file: Path, *args: str) -> Any:
    env = env_for(daemon.home, HEARTH_CATALOG=str(catalog_file))
    return hearth(daemon.home, *args, env=env)


def _calls(daemon: Running, after: int) -> list[dict[str, Any]]:
    entries = daemon.call("audit.list", {"caller": "models.pull"})["entries"]
    return [e for e in entries if e["seq"] >= after]


def _next_seq(daemon: Running) -> int:
    return int(daemon.call("net.status")["audit"]["entries"])


def _sources(paths: Paths) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((paths.models / ".sources.json").read_text())
    return data


def test_a_pull_by_catalog_name_is_verified_audited_under_consent_and_becomes_the_default(
    puller: Running, hub: str, catalog_file: Path, files: dict[str, bytes]
) -> None:
    start = _next_seq(puller)
    out = _cli(puller, catalog_file, "models", "pull", "tiny-qwen", "--yes", "--endpoint", hub)
    assert out.returncode == 0, out.stderr
    assert "apache-2.0" in out.stdout and "only network call" in out.stdout
    assert "100%" in out.stderr
    assert "pulled tiny-qwen" in out.stdout and "now the default model" in out.stdout
    sha = hashlib.sha256(files["gguf"]).hexdigest()
    listing = {m["name"]: m for m in puller.call("models.list")["models"]}
    assert listing["tiny-qwen"]["sha256"] == sha
    assert puller.call("models.list")["default"] == "tiny-qwen"
    source = _sources(puller.paths)["tiny-qwen"]
    assert source["revision"] == COMMIT and source["files"] == {"tiny-qwen.gguf": f"sha256:{sha}"}
    assert (source["catalog"], source["format"], source["repo"]) == ("tiny-qwen", "gguf", GGUF_REPO)
    # offline stayed offline: the consent let this one download out, and said so in the log
    status = puller.call("net.status")
    assert status["mode"] == "offline" and status["rules"] == []
    calls = _calls(puller, start)
    assert {e["decision"] for e in calls} == {"allow"}
    assert {e["rule"] for e in calls if e["phase"] == "intent"} == {
        "consent: catalog pull tiny-qwen"
    }
    outcomes = [(e["method"], e["path"], e["status"]) for e in calls if e["phase"] == "outcome"]
    assert outcomes == [
        ("HEAD", f"/{GGUF_REPO}/resolve/{COMMIT}/tiny-qwen.gguf", 302),
        ("GET", f"/{GGUF_REPO}/resolve/{COMMIT}/tiny-qwen.gguf", 302),
        ("GET", f"/cdn/{sha}", 200),
    ]
    assert puller.call("audit.verify")["ok"]
    answer = puller.call("chat", {"messages": HI, "options": {"max_tokens": 2}, "store": False})
    assert answer["model"] == "tiny-qwen" and answer["tokens"]["completion"] >= 1
    catalog_view = puller.call("models.catalog")
    tiny = next(m for m in catalog_view["models"] if m["name"] == "tiny-qwen")
    assert tiny["installed"] == ["tiny-qwen"] and tiny["sources"]["tiny-qwen"]["revision"] == COMMIT


def test_an_mlx_catalog_model_is_a_folder_fetched_file_by_file_at_one_commit(
    puller: Running, hub: str, hub_state: HubState, files: dict[str, bytes]
) -> None:
    progress: list[dict[str, Any]] = []
    params = {"model": "tiny-qwen", "format": "mlx", "consent": True, "endpoint": hub}
    with puller.client() as c:
        info = c.call("models.pull", params, lambda _, p: progress.append(p))
    assert info["name"] == "tiny-qwen-mlx" and info["format"] == "mlx"
    folder = puller.paths.models / "tiny-qwen-mlx"
    assert sorted(p.name for p in folder.iterdir()) == MLX_FILES  # README left behind
    for name in MLX_FILES:
        assert (folder / name).read_bytes() == files[f"mlx/{name}"]
    assert [(p["file"], p["files_total"]) for p in progress if p["done"] == p["total"]] == [
        (name, len(MLX_FILES)) for name in MLX_FILES
    ]
    source = _sources(puller.paths)["tiny-qwen-mlx"]
    assert source["revision"] == COMMIT  # "main", resolved once
    assert source["files"]["config.json"] == f"git-sha1:{git_sha1(files['mlx/config.json'])}"
    weights = hashlib.sha256(files["mlx/model.safetensors"]).hexdigest()
    assert source["files"]["model.safetensors"] == f"sha256:{weights}"
    asked = [(m, p) for m, p, _ in hub_state.requests if m == "HEAD"]
    assert asked == [("HEAD", f"/{MLX_REPO}/resolve/{COMMIT}/{name}") for name in MLX_FILES]
    assert hub_state.requests[0][1] == f"/api/models/{MLX_REPO}/revision/main"
    answer = puller.call(
        "chat", {"model": "tiny-qwen-mlx", "messages": HI, "options": {"max_tokens": 2},
                 "store": False}
    )  # fmt: skip
    assert answer["engine"] == "mlx" and answer["tokens"]["completion"] == 2


def test_an_interrupted_folder_pull_resumes_without_fetching_finished_files_again(
    hub: str, hub_state: HubState, catalog_file: Path, files: dict[str, bytes]
) -> None:
    home = make_home()
    daemon = launch(home, env=env_for(home, HEARTH_CATALOG=str(catalog_file)))
    try:
        params = {"model": "tiny-unpinned", "format": "mlx", "consent": True, "endpoint": hub}
        hub_state.drops = 3  # every attempt at the first CDN file (the weights) is cut off
        with pytest.raises(EgressFailed):
            daemon.call("models.pull", params)
        assert not (daemon.paths.models / "tiny-unpinned-mlx").exists()
        hub_state.requests.clear()
        info = daemon.call("models.pull", params)
        assert info["name"] == "tiny-unpinned-mlx"
        fetched = [p for m, p, _ in hub_state.requests if m == "GET" and "/resolve/" in p]
        assert f"/{MLX_REPO}/resolve/{COMMIT}/config.json" not in fetched  # kept from before
        ranged = [r for m, p, r in hub_state.requests if m == "GET" and p.startswith("/cdn/")]
        assert ranged[0] is not None and ranged[0].startswith("bytes=")  # the weights resumed
        folder = daemon.paths.models / "tiny-unpinned-mlx"
        assert (folder / "model.safetensors").read_bytes() == files["mlx/model.safetensors"]
        assert not list((daemon.paths.models / ".pull").rglob("*.part"))
    finally:
        daemon.stop()
        shutil.rmtree(home, ignore_errors=True)


def test_a_branch_only_entry_is_resolved_to_a_commit_and_the_hubs_hash_recorded(
    puller: Running, hub: str, hub_state: HubState, files: dict[str, bytes]
) -> None:
    params = {"model": "tiny-unpinned", "format": "gguf", "consent": True, "endpoint": hub}
    info = puller.call("models.pull", params)
    sha = hashlib.sha256(files["llama"]).hexdigest()
    assert info["name"] == "tiny-unpinned" and info["sha256"] == sha
    assert info["source"]["revision"] == COMMIT
    assert info["source"]["revision_pinned_by_catalog"] is False
    assert info["source"]["files"] == {"tiny-llama.gguf": f"sha256:{sha}"}
    paths = [p for _, p, _ in hub_state.requests]
    assert paths[0] == f"/api/models/{UNPINNED_REPO}/revision/main"
    assert paths[1] == f"/{UNPINNED_REPO}/resolve/{COMMIT}/tiny-llama.gguf"


def test_without_consent_an_offline_daemon_refuses_and_nothing_is_fetched(
    puller: Running, hub: str, hub_state: HubState
) -> None:
    before = sorted(p.name for p in puller.paths.models.iterdir())
    with pytest.raises(EgressDenied, match="offline"):
        puller.call("models.pull", {"model": "tiny-wrong", "endpoint": hub})
    assert hub_state.requests == []
    assert sorted(p.name for p in puller.paths.models.iterdir()) == before


def test_a_file_whose_hub_hash_is_not_the_catalogs_is_refused_before_downloading(
    puller: Running, hub: str, hub_state: HubState
) -> None:
    with pytest.raises(IntegrityError, match="not the expected"):
        puller.call("models.pull", {"model": "tiny-wrong", "consent": True, "endpoint": hub})
    assert [m for m, _, _ in hub_state.requests] == ["HEAD"]
    assert "tiny-wrong" not in [m["name"] for m in puller.call("models.list")["models"]]


def test_an_unknown_name_is_refused_with_the_catalogs_names(puller: Running) -> None:
    with pytest.raises(InvalidParams, match="tiny-qwen, tiny-wrong, tiny-unpinned"):
        puller.call("models.pull", {"model": "gpt-17", "consent": True})
    with pytest.raises(InvalidParams, match="takes no file"):
        puller.call("models.pull", {"model": "tiny-qwen", "file": "x.gguf"})


def test_the_cli_downloads_nothing_without_a_yes(
    puller: Running, hub: str, hub_state: HubState, catalog_file: Path
) -> None:
    out = _cli(puller, catalog_file, "models", "pull", "tiny-wrong", "--endpoint", hub)
    assert out.returncode == 2 and "nothing downloaded; add --yes" in out.stderr
    assert "tiny-wrong: Tiny 0.5B" in out.stdout  # it said what it would fetch
    assert hub_state.requests == []
