"""Record sealing: a record opens only where it was stored, under the key that sealed it."""

from __future__ import annotations

import pytest

from daemon.errors import IntegrityError
from daemon.vault.crypto import NONCE_BYTES, Sealer, new_key


def test_a_sealed_record_opens_at_its_own_table_row_and_key_and_nowhere_else() -> None:
    key = new_key()
    sealer = Sealer(key, "k1")
    sealed = sealer.seal("messages", 7, b"hello")

    assert sealer.open("messages", 7, sealed) == b"hello"
    for table, row, other in [
        ("messages", 8, sealer),  # another row
        ("conversations", 7, sealer),  # another table
        ("messages", 7, Sealer(key, "k2")),  # same bytes, recorded under another key id
        ("messages", 7, Sealer(new_key(), "k1")),  # another key
    ]:
        with pytest.raises(IntegrityError) as failed:
            other.open(table, row, sealed)
        assert failed.value.data == {"table": table, "row": str(row)}
        assert f"{table}#{row}" in failed.value.message


def test_sealing_the_same_text_twice_uses_a_fresh_nonce_and_gives_different_bytes() -> None:
    sealer = Sealer(new_key(), "k")
    first, second = sealer.seal("t", 1, b"same"), sealer.seal("t", 1, b"same")
    assert first[:NONCE_BYTES] != second[:NONCE_BYTES]
    assert first != second


def test_a_truncated_record_is_an_integrity_error_not_a_crash() -> None:
    sealer = Sealer(new_key(), "k")
    with pytest.raises(IntegrityError):
        sealer.open("t", 1, b"short")


def test_lookup_tags_depend_on_the_key_so_names_are_not_recognisable() -> None:
    a, b = Sealer(new_key(), "a"), Sealer(new_key(), "b")
    assert a.lookup("setting\0theme") == a.lookup("setting\0theme")
    assert a.lookup("setting\0theme") != b.lookup("setting\0theme")
    assert b"theme" not in a.lookup("setting\0theme")
