"""A small Hugging Face-style hub for the pull tests, served on 127.0.0.1.

Like huggingface.co: ``/{repo}/resolve/{revision}/{file}`` answers a file kept in LFS
with a 302 to a CDN path and the file's SHA-256 in ``X-Linked-Etag`` (the CDN's own
``ETag`` is something else), and a small file kept in git directly, with its git blob
SHA-1 as ``ETag``. Byte ranges are served (206), and a download can be cut off halfway.
``/api/models/{repo}/revision/{revision}`` lists a repository's files (``siblings``) and
the commit the revision points at (``sha``).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer

from .conftest import QuietHandler

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def git_sha1(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


@dataclass
class HubState:
    lfs: dict[str, bytes] = field(default_factory=dict)  # "owner/name/file" -> content
    git: dict[str, bytes] = field(default_factory=dict)
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)
    drops: int = 0  # how many CDN downloads to cut off halfway
    corrupt: bool = False  # serve one flipped byte (the advertised hash stays right)
    pause: float = 0.0  # seconds to wait after each MB sent: a slow download
    _sha: dict[int, str] = field(default_factory=dict)

    def sha256(self, content: bytes) -> str:
        """Hashes are remembered: the tests serve the ~100 MB default model."""
        key = id(content)
        if key not in self._sha:
            self._sha[key] = hashlib.sha256(content).hexdigest()
        return self._sha[key]

    def files(self, repo: str) -> list[str]:
        return [k[len(repo) + 1 :] for k in [*self.lfs, *self.git] if k.startswith(f"{repo}/")]


def hub_handler(state: HubState) -> type[QuietHandler]:
    class Hub(QuietHandler):
        def do_HEAD(self) -> None:
            self.answer()

        def do_GET(self) -> None:
            self.answer()

        def answer(self) -> None:
            state.requests.append((self.command, self.path, self.headers.get("Range")))
            listing = re.fullmatch(r"/api/models/([\w.-]+/[\w.-]+)/revision/([\w.%-]+)", self.path)
            if listing:
                siblings = [{"rfilename": name} for name in state.files(listing.group(1))]
                if not siblings:
                    return self.send_body(404, b'{"error": "Repository not found"}')
                listed = {"sha": COMMIT, "siblings": siblings}
                return self.send_body(200, json.dumps(listed).encode())
            cdn = re.fullmatch(r"/cdn/([0-9a-f]{64})\?X-Signature=\w+", self.path)
            if cdn:
                return self.serve_cdn(cdn.group(1))
            found = re.fullmatch(r"/([\w.-]+/[\w.-]+)/resolve/([\w.%-]+)/(.+)", self.path)
            if not found or found.group(2) not in ("main", COMMIT):
                return self.send_body(404, b"Entry not found")
            key = f"{found.group(1)}/{found.group(3)}"
            if key in state.git:
                content = state.git[key]
                served = content.upper() if state.corrupt else content
                return self.send_body(
                    200, served, ETag=f'"{git_sha1(content)}"', X_Repo_Commit=COMMIT
                )
            if key not in state.lfs:
                return self.send_body(404, b"Entry not found")
            sha = state.sha256(state.lfs[key])
            self.send_body(
                302,
                b"",
                Location=f"/cdn/{sha}?X-Signature=abc",
                X_Linked_Etag=f'"{sha}"',
                X_Linked_Size=str(len(state.lfs[key])),
                X_Repo_Commit=COMMIT,
                ETag=f'"{sha}"',
            )

        def serve_cdn(self, sha: str) -> None:
            content = next(c for c in state.lfs.values() if state.sha256(c) == sha)
            if state.corrupt:
                content = content[:100] + bytes([content[100] ^ 1]) + content[101:]
            ranged = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
            start = int(ranged.group(1)) if ranged else 0
            if start >= len(content):
                return self.send_body(416, b"", Content_Range=f"bytes */{len(content)}")
            body = content[start:]
            self.send_response(206 if ranged else 200)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("ETag", '"cdn-md5-not-a-sha256"')
            if ranged:
                self.send_header(
                    "Content-Range", f"bytes {start}-{len(content) - 1}/{len(content)}"
                )
            self.end_headers()
            if state.drops:
                state.drops -= 1
                self.wfile.write(body[: len(body) // 2])
                self.close_connection = True  # the client sees the body end early
                return
            for start in range(0, len(body), 1 << 20):
                self.wfile.write(body[start : start + (1 << 20)])
                time.sleep(state.pause)

    return Hub


@contextmanager
def running_hub(state: HubState) -> Iterator[str]:
    """The hub served on a free port of 127.0.0.1 while in the block; yields its URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), hub_handler(state))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
