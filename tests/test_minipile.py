"""Tests of the embedded mini-Pile corpus: the committed shards and the script that builds them."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import zstandard

MINIPILE_DIR = Path(__file__).resolve().parents[1] / "resources" / "minipile"
BUILD_SCRIPT = MINIPILE_DIR / "build.py"
WINDOW_CHARS = 200


def load_build_module():
    """Import resources/minipile/build.py, which is a script and not part of the package."""
    spec = importlib.util.spec_from_file_location("minipile_build", BUILD_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


build = load_build_module()


def read_shard(path: Path) -> list[dict]:
    """Read a Pile shard as a Pile reader does: stream-decompress, then one JSON object per line."""
    with path.open("rb") as handle:
        reader = io.TextIOWrapper(zstandard.ZstdDecompressor().stream_reader(handle), encoding="utf-8", newline="\n")
        return [json.loads(line) for line in reader]


@pytest.fixture(scope="module")
def shards() -> dict[str, list[dict]]:
    """The committed train and val records."""
    return {split: read_shard(MINIPILE_DIR / f"{split}.jsonl.zst") for split in ("train", "val")}


def text_bytes(records: list[dict]) -> int:
    return sum(len(record["text"].encode("utf-8")) for record in records)


def test_minipile_shards_every_line_is_a_pile_record(shards):
    for split, records in shards.items():
        assert records, split
        for number, record in enumerate(records, start=1):
            assert set(record) == {"text", "meta"}, (split, number)
            assert isinstance(record["text"], str), (split, number)
            assert isinstance(record["meta"]["pile_set_name"], str), (split, number)
            assert record["meta"]["pile_set_name"], (split, number)


def test_minipile_documents_within_size_bounds(shards):
    for split, records in shards.items():
        for number, record in enumerate(records, start=1):
            text = record["text"]
            assert len(text.strip()) >= 200, (split, number)
            assert len(text.encode("utf-8")) <= 60_000, (split, number)
            assert "\r" not in text, (split, number)


def test_minipile_train_size_and_domains(shards):
    train_names = Counter(record["meta"]["pile_set_name"] for record in shards["train"])

    assert text_bytes(shards["train"]) >= 3_000_000
    assert len(train_names) >= 4
    assert {"Github", "FreeLaw", "Pile-CC", "StackExchange"} <= set(train_names)


def test_minipile_val_size_and_share(shards):
    n_train = len(shards["train"])
    n_val = len(shards["val"])

    assert 0.05 <= n_val / (n_train + n_val) <= 0.15
    assert text_bytes(shards["val"]) >= 300_000
    assert {record["meta"]["pile_set_name"] for record in shards["val"]} == {"Github", "FreeLaw", "Pile-CC", "StackExchange"}


def test_minipile_shards_interleave_domains(shards):
    first_names = [record["meta"]["pile_set_name"] for record in shards["train"][:40]]

    assert len(set(first_names)) >= 3


def test_minipile_val_disjoint_from_train(shards):
    train_text = "\x00".join(record["text"] for record in shards["train"])
    rng = random.Random(0)

    windows = []
    for record in shards["val"]:
        text = record["text"]
        line_starts = [0] + [index + 1 for index, char in enumerate(text) if char == "\n"]
        aligned = [start for start in line_starts if start + WINDOW_CHARS <= len(text)]
        anywhere = range(len(text) - WINDOW_CHARS + 1)
        starts = rng.sample(aligned, min(20, len(aligned))) + rng.sample(anywhere, min(20, len(anywhere)))
        windows.extend(text[start:start + WINDOW_CHARS] for start in starts)

    assert len(windows) >= 1_500
    shared = [window for window in windows if window in train_text]
    assert shared == []


def test_minipile_readme_counts_match_shards(shards):
    readme = (MINIPILE_DIR / "README.md").read_text(encoding="utf-8")

    assert build.format_counts_table(shards) in readme


def test_split_long_text_keeps_all_paragraphs():
    paragraphs = [f"paragraph {index} " + "word " * 40 for index in range(50)]
    text = "\n\n".join(paragraphs)

    parts = build.split_long_text(text, max_bytes=1_000)

    assert len(parts) > 1
    assert all(len(part.encode("utf-8")) <= 1_000 for part in parts)
    assert "\n\n".join(parts) == text


def test_split_long_text_splits_a_single_overlong_line():
    text = "x" * 2_500

    parts = build.split_long_text(text, max_bytes=1_000)

    assert all(len(part) <= 1_000 for part in parts)
    assert "".join(parts) == text


def test_find_overlapping_flags_shared_window():
    shared = "".join(chr(ord("a") + index % 26) for index in range(250))
    train = ["prefix " + shared + " suffix", "unrelated " * 40]
    val = ["other " * 50, "start " + shared[10:220] + " end", "short " + shared[:150] + " text " * 40]

    assert build.find_overlapping(val, train) == {1}


def test_assign_splits_keeps_families_whole():
    documents = [build.Document(f"text {index}", "Github", f"stdlib:package{index // 3}", Path(f"file{index}.py"))
                 for index in range(300)]

    splits = build.assign_splits(documents, val_fraction=0.10)

    val_documents = [document for document in documents if splits[document.family] == "val"]
    assert len(splits) == 100
    assert 27 <= len(val_documents) <= 33
    assert len(val_documents) % 3 == 0


def test_assign_splits_rejects_family_spanning_domains():
    documents = [build.Document("a", "Github", "stdlib:os", Path("os.py")),
                 build.Document("b", "StackExchange", "stdlib:os", Path("os.py"))]

    with pytest.raises(build.CorpusBuildError, match="stdlib:os"):
        build.assign_splits(documents)


def test_license_family_groups_versions():
    assert build.license_family("GPL-2") == build.license_family("LGPL-2.1") == build.license_family("GFDL-1.3")
    assert build.license_family("MPL-1.1") == build.license_family("MPL-2.0") == "license:MPL"
    assert build.license_family("Apache-2.0") == "license:Apache"


def test_build_rejects_non_stdlib_directory(tmp_path):
    with pytest.raises(build.CorpusBuildError, match="--stdlib"):
        build.build(tmp_path / "out", tmp_path, build.DEFAULT_LICENSES_DIR)


@pytest.mark.skipif(not build.DEFAULT_LICENSES_DIR.is_dir(), reason="needs Debian's /usr/share/common-licenses")
def test_build_is_byte_deterministic(tmp_path):
    outputs = []
    for name, hash_seed in (("first", "1"), ("second", "2")):
        out_dir = tmp_path / name
        environment = {**os.environ, "PYTHONHASHSEED": hash_seed}
        subprocess.run([sys.executable, str(BUILD_SCRIPT), "--out", str(out_dir)],
                       check=True, capture_output=True, env=environment)
        outputs.append({path.name: path.read_bytes() for path in sorted(out_dir.iterdir())})

    assert sorted(outputs[0]) == ["NOTICE", "train.jsonl.zst", "val.jsonl.zst"]
    assert outputs[0] == outputs[1]
