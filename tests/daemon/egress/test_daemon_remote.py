"""`chat` with ``route: "remote"`` on the real daemon, against an OpenAI-compatible server
on 127.0.0.1: answered and audited, never a fallback, and the API key kept out of every
file. Run once with the real Secret Service (gnome-keyring on a private D-Bus session)
holding the key, and once on a machine without a keychain (sealed files)."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from daemon.errors import EgressDenied, InvalidParams
from tests.conftest import make_home

from .conftest import QuietHandler
from .daemon_support import Running, env_for, launch

API_KEY = "sk-hearth-test-9f3c1d7a2b6e4f80-never-written-down"
SERVED_BY = "big-model-2025-01"
WORDS = ["Hello", " from", " a", " bigger", " model."]
KEYRING_SESSION = (
    "echo -n test-login | gnome-keyring-daemon --unlock --components=secrets >/dev/null "
    '&& exec "$@"'
)


class OpenAIish(QuietHandler):
    seen: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.seen.append({"path": self.path, "auth": self.headers.get("Authorization"), **body})
        if self.headers.get("Authorization") != f"Bearer {API_KEY}":
            return self.send_body(401, b'{"error": {"message": "bad key"}}')
        chunks = [{"model": SERVED_BY, "choices": [{"delta": {"content": w}}]} for w in WORDS]
        chunks.append({"model": SERVED_BY, "choices": [{"delta": {}, "finish_reason": "stop"}],
                       "usage": {"prompt_tokens": 9, "completion_tokens": 5}})  # fmt: skip
        stream = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
        self.send_body(200, stream.encode(), Content_Type="text/event-stream")


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    http = ThreadingHTTPServer(("127.0.0.1", 0), OpenAIish)
    http.daemon_threads = True
    threading.Thread(target=http.serve_forever, args=(0.05,), daemon=True).start()
    yield f"http://127.0.0.1:{http.server_address[1]}/v1"
    http.shutdown()
    http.server_close()


@pytest.fixture(params=["keychain", "file"])
def remote_daemon(request: pytest.FixtureRequest) -> Iterator[tuple[Running, str]]:
    home = make_home()
    if request.param == "keychain":
        for tool in ("dbus-run-session", "gnome-keyring-daemon"):
            if shutil.which(tool) is None:
                pytest.fail(f"{tool} is missing: run `bash tests/system-deps.sh` first")
        env = {k: v for k, v in env_for(home).items()
               if not k.startswith(("DBUS", "PYTHON_KEYRING"))}  # fmt: skip
        (home / "user").mkdir()
        env.update(HOME=str(home / "user"), XDG_RUNTIME_DIR=str(home / "user"))
        prefix = ["dbus-run-session", "--", "sh", "-c", KEYRING_SESSION, "sh"]
        daemon = launch(home, prefix, env)
    else:
        daemon = launch(home)
    yield daemon, request.param
    daemon.stop()
    shutil.rmtree(home, ignore_errors=True)


def _chat(daemon: Running, **params: Any) -> tuple[dict[str, Any], list[str]]:
    deltas: list[str] = []
    with daemon.client() as c:
        result = c.call(
            "chat",
            {"messages": [{"role": "user", "content": "Hi there"}], "store": False, **params},
            lambda method, p: deltas.append(p["text"]) if method == "chat.delta" else None,
        )
    return result, deltas


def test_a_remote_chat_is_answered_audited_and_its_key_never_written(
    remote_daemon: tuple[Running, str], server: str
) -> None:
    daemon, store = remote_daemon
    status = daemon.call("net.remote", {"url": server, "model": "big", "api_key": API_KEY})
    assert status["remote"] == {"url": server, "model": "big", "api_key_set": True}
    assert status["audit"]["secrets"] == store
    daemon.call("net.set_mode", {"mode": "allow-listed"})
    daemon.call("net.allow", {"host": "127.0.0.1", "caller": "remote.chat"})
    OpenAIish.seen.clear()

    result, deltas = _chat(daemon, route="remote", options={"max_tokens": 20, "temperature": 0})

    assert result["text"] == "".join(WORDS) and deltas == WORDS
    assert (result["model"], result["engine"], result["route"]) == (SERVED_BY, "remote", "remote")
    assert result["tokens"] == {"prompt": 9, "completion": 5}
    (request,) = OpenAIish.seen
    assert request["auth"] == f"Bearer {API_KEY}" and request["model"] == "big"
    assert request["max_tokens"] == 20 and request["stream"] is True
    entries = daemon.call("audit.list", {"caller": "remote.chat"})["entries"]
    assert [(e["phase"], e["method"], e["path"], e["decision"], e["status"]) for e in entries] == [
        ("intent", "POST", "/v1/chat/completions", "allow", None),
        ("outcome", "POST", "/v1/chat/completions", "allow", 200),
    ]
    assert entries[0]["bytes_up"] > 0 and entries[1]["bytes_down"] > 0

    daemon.stop()  # logs flushed, final checkpoint written
    secret = API_KEY.encode()
    for path in daemon.home.rglob("*"):
        if path.is_file() and not path.is_socket():
            assert secret not in path.read_bytes(), f"the API key is in {path}"
    if store == "keychain":
        assert not (daemon.paths.data / "egress" / "sealed").exists()


def test_a_remote_route_never_falls_back_to_the_local_model(
    remote_daemon: tuple[Running, str], server: str
) -> None:
    daemon, _ = remote_daemon
    with pytest.raises(InvalidParams, match="no remote model server is configured"):
        _chat(daemon, route="remote")
    daemon.call("net.remote", {"url": server, "model": "big", "api_key": API_KEY})
    OpenAIish.seen.clear()
    with pytest.raises(EgressDenied, match="Hearth is offline"):
        _chat(daemon, route="remote")  # configured, but the policy says no
    with pytest.raises(InvalidParams, match="route must be"):
        _chat(daemon, route="elsewhere")
    assert OpenAIish.seen == []
    assert daemon.call("status")["runners"] == []  # no local model was started either


def test_a_rewrite_preset_routed_remote_goes_through_the_gateway_and_the_others_stay_local(
    server: str,
) -> None:
    """Rewrites stay local unless the user's preset says `route = "remote"`: that one is
    answered by the remote model (audited, cleaned up as a local rewrite is), never by
    the local one, and refused while the policy refuses it."""
    home = make_home(
        '[[presets]]\nname = "polish"\ninstruction = "Polish this text."\nroute = "remote"\n'
    )
    daemon = launch(home)
    try:
        daemon.call("net.remote", {"url": server, "model": "big", "api_key": API_KEY})
        presets = {p["name"]: p["route"] for p in daemon.call("rewrite.presets")["presets"]}
        assert presets["polish"] == "remote" and presets["proofread"] == "local"
        OpenAIish.seen.clear()
        with pytest.raises(EgressDenied, match="Hearth is offline"):
            daemon.call("rewrite", {"text": "i has a cat", "preset": "polish"})
        assert daemon.call("status")["runners"] == []  # no fallback to the local model

        daemon.call("net.set_mode", {"mode": "allow-listed"})
        daemon.call("net.allow", {"host": "127.0.0.1", "caller": "remote.chat"})
        deltas: list[str] = []
        with daemon.client() as c:
            result = c.call(
                "rewrite", {"text": "i has a cat", "preset": "polish"},
                lambda method, p: deltas.append(p["text"]) if method == "rewrite.delta" else None,
            )  # fmt: skip
        assert result["text"] == "".join(WORDS) == "".join(deltas)
        assert (result["engine"], result["route"]) == ("remote", "remote")
        (request,) = OpenAIish.seen
        assert "i has a cat" in request["messages"][-1]["content"]
        assert "Polish this text." in json.dumps(request["messages"])
        assert daemon.call("status")["runners"] == []

        local = daemon.call("rewrite", {"text": "i has a cat", "preset": "proofread",
                                        "options": {"max_tokens": 8}})  # fmt: skip
        assert local["engine"] != "remote" and len(OpenAIish.seen) == 1  # not sent out
    finally:
        daemon.stop()
        shutil.rmtree(home, ignore_errors=True)
