"""The catalog shipped with Hearth: its schema, sizes, licenses, per-platform downloads,
and the recommendation for a machine."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from daemon import catalog
from daemon.catalog import CatalogError, Machine

ROOT = Path(__file__).resolve().parents[2]
ENTRIES = catalog.load(catalog.PACKAGED)


def test_the_catalog_has_eight_models_of_four_families_from_half_to_four_billion() -> None:
    assert len(ENTRIES) >= 8
    assert len({e.family.split()[0].rstrip("0123456789.") for e in ENTRIES}) >= 4
    sizes = sorted(e.params_b for e in ENTRIES)
    assert sizes[0] == 0.5 and 3.5 <= sizes[-1] <= 4.0
    assert len({e.name for e in ENTRIES}) == len(ENTRIES)


def test_every_entry_has_a_gguf_file_and_an_mlx_folder_from_a_hub_repository() -> None:
    for entry in ENTRIES:
        gguf, mlx = entry.downloads["gguf"], entry.downloads["mlx"]
        assert gguf.file is not None and gguf.file.endswith(".gguf"), entry.name
        assert mlx.file is None and mlx.sha256 is None, entry.name
        assert re.fullmatch(r"[\w.-]+/[\w.-]+", gguf.repo) and re.fullmatch(
            r"[\w.-]+/[\w.-]+", mlx.repo
        )
        assert gguf.quantization.startswith("Q4") and mlx.quantization in ("4-bit", "8-bit")
        assert (
            entry.model_name("gguf") == entry.name
            and entry.model_name("mlx") == f"{entry.name}-mlx"
        )


def test_pinned_downloads_name_a_commit_and_the_rest_say_they_are_not_pinned() -> None:
    pinned = [d for e in ENTRIES for d in e.downloads.values() if d.revision_verified]
    assert len(pinned) >= 7  # most GGUF files are pinned with their SHA-256
    for download in pinned:
        assert re.fullmatch(r"[0-9a-f]{40}", download.revision)
    for entry in ENTRIES:
        for download in entry.downloads.values():
            if not download.revision_verified:
                assert download.revision == "main", entry.name
            if download.sha256 is not None:
                assert download.revision_verified and re.fullmatch(r"[0-9a-f]{64}", download.sha256)


def test_sizes_and_ram_agree_with_what_the_daemons_memory_check_counts() -> None:
    for entry in ENTRIES:
        biggest = max(d.size_mb for d in entry.downloads.values())
        assert entry.ram_mb == catalog.ram_needed(biggest, entry.kv_cache_mb), entry.name
        assert entry.ram_mb >= biggest + catalog.RUNNER_MB
        # a download is about half a byte a parameter at 4 bits, a byte at 8
        bits = 8 if entry.downloads["mlx"].quantization == "8-bit" else 4
        for download in entry.downloads.values():
            per_param = download.size_mb / (entry.params_b * 1000)
            assert 0.4 <= per_param <= 1.3 * bits / 8 + 0.25, (entry.name, download.format)


def test_gated_or_restrictive_licenses_are_flagged_and_explained() -> None:
    by_name = {e.name: e for e in ENTRIES}
    assert by_name["llama-3.2-1b-instruct"].gated and by_name["gemma-3-1b-it"].gated
    assert not by_name["qwen2.5-3b-instruct"].permissive  # research license
    for entry in ENTRIES:
        assert entry.license_url.startswith("https://")
        if entry.gated or entry.license not in catalog.PERMISSIVE:
            assert entry.license_note and not entry.permissive, entry.name


def test_tags_say_what_each_model_is_for() -> None:
    tags = {t for e in ENTRIES for t in e.tags}
    assert tags == {"rewrite", "chat", "multilingual", "code"}
    assert all("rewrite" in e.tags for e in ENTRIES)


@pytest.mark.parametrize(
    ("ram_mb", "expected"),
    [
        (2_000, "qwen2.5-0.5b-instruct"),
        (4_000, "qwen2.5-1.5b-instruct"),
        (8_000, "qwen2.5-1.5b-instruct"),
        (32_000, "qwen2.5-1.5b-instruct"),  # on a CPU, at most 2B parameters
        (None, "qwen2.5-1.5b-instruct"),  # RAM unknown: 8 GB assumed
    ],
)
def test_the_recommendation_fits_the_machines_ram(ram_mb: int | None, expected: str) -> None:
    best = catalog.recommend(ENTRIES, Machine(ram_mb, apple_silicon=False))
    assert best is not None and best.name == expected
    assert best.permissive and "rewrite" in best.tags
    assert best.ram_mb <= catalog.RAM_SHARE * (ram_mb or 8000)


@pytest.mark.parametrize(
    ("ram_mb", "expected"),
    [(8_000, "qwen2.5-1.5b-instruct"), (16_000, "phi-3.5-mini-instruct")],
)
def test_apple_silicon_with_ram_to_spare_gets_a_bigger_model(ram_mb: int, expected: str) -> None:
    best = catalog.recommend(ENTRIES, Machine(ram_mb, apple_silicon=True))
    assert best is not None and best.name == expected


def test_apple_silicon_gets_mlx_folders_and_everything_else_gguf_files() -> None:
    assert Machine(16_000, apple_silicon=True).format == "mlx"
    assert Machine(16_000, apple_silicon=False).format == "gguf"


def test_a_tiny_machine_still_gets_the_smallest_model() -> None:
    best = catalog.recommend(ENTRIES, Machine(1_000, apple_silicon=False))
    assert best is not None and best.name == "qwen2.5-0.5b-instruct"


def test_the_catalog_ships_in_the_package() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    data = config["tool"]["setuptools"]["package-data"]
    assert "catalog.toml" in data.get("daemon", []) or "*.toml" in data.get("*", [])
    assert catalog.PACKAGED == ROOT / "daemon" / "catalog.toml"


def _broken(tmp_path: Path, old: str, new: str) -> Path:
    text = catalog.PACKAGED.read_text()
    assert old in text
    path = tmp_path / "catalog.toml"
    path.write_text(text.replace(old, new, 1))
    return path


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('parameters = "0.5B"', 'parameters = "7B"', "from 0.5B to 4B"),
        ('revision = "b26a58accf53b1a19fbc555d52fdb224bec473f5"', 'revision = "main"',
         "a verified revision is a 40-hex commit"),
        ("ram_mb = 700", "ram_mb = 500", "ram_mb must be 700"),
        ('tags = ["rewrite", "chat", "multilingual"]', 'tags = ["poetry"]', "tags must be"),
        ("[models.mlx]", "[models.other]", "mlx: missing"),
        ('license = "llama3.2"', "license = 3", "license is missing"),
        ('file = "Qwen2.5-0.5B-Instruct-Q4_K_M.gguf"', 'file = "model.bin"', "names its .gguf"),
    ],
)  # fmt: skip
def test_a_malformed_catalog_is_refused_naming_the_entry_and_field(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    with pytest.raises(CatalogError, match=re.escape(message)) as refused:
        catalog.load(_broken(tmp_path, old, new))
    assert "models[" in refused.value.message


def test_the_catalog_path_can_be_overridden_for_tests(tmp_path: Path) -> None:
    assert catalog.catalog_path({}) == catalog.PACKAGED
    assert (
        catalog.catalog_path({catalog.CATALOG_ENV: str(tmp_path / "c.toml")}) == tmp_path / "c.toml"
    )
