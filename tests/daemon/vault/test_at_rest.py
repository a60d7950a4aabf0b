"""Nothing the user writes reaches the disk in the clear."""

from __future__ import annotations

import secrets
from pathlib import Path

from daemon.vault import Vault
from tests.daemon.vault.support import files_under, passphrase

ENCODINGS = ("utf-8", "utf-16-le", "utf-16-be")


def _leaks(root: Path, marker: str) -> list[str]:
    found = []
    for name, data in files_under(root).items():
        for encoding in ENCODINGS:
            if marker.encode(encoding) in data:
                found.append(f"{name} ({encoding})")
    return found


def test_a_marker_written_everywhere_is_in_no_file_under_the_data_dir_yet_search_finds_it(
    db_path: Path,
) -> None:
    marker = f"MARKER-{secrets.token_hex(8)}"
    data_dir = db_path.parent
    with Vault.create(db_path, passphrase()) as v:
        conv = v.new_conversation(f"title {marker}")
        v.append_message(conv, "user", f"my secret is {marker}")
        v.append_message(conv, "assistant", f"noted: {marker}")
        v.set_setting(marker, f"value {marker}")
        v.plugin_put(marker, marker, {"note": marker})
        v.new_conversation("unrelated")

        assert (data_dir / "vault.db-wal").exists()  # checked while the WAL is live
        assert _leaks(data_dir, marker) == []

        hits = v.search(marker.lower())
        assert [(h["conversation"], h["message"]) for h in hits] == [
            (conv, None),
            (conv, 1),
            (conv, 2),
        ]
        assert marker in hits[1]["snippet"]

    assert _leaks(data_dir, marker) == []
    with Vault.open(db_path, passphrase()) as v:
        assert v.get_setting(marker) == f"value {marker}"
        assert len(v.search(marker)) == 3
