"""Seeded sampling of member and non-member windows from Pile-format shards."""

import numpy as np
import pyarrow.parquet as pq
import pytest

from conftest import pile_record, write_shard
from memprune.demo_model import train_bpe_tokenizer
from memprune.extraction import (
    SAMPLE_SCHEMA,
    ExtractionError,
    assign_duplicates,
    sample_windows_from_shards,
    windows_to_table,
)
from memprune.provenance import read_parquet_provenance, write_parquet_atomic

WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma tau".split()


def make_documents(count: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(20, 200)))) for _ in range(count)]


@pytest.fixture(scope="module")
def tokenizer():
    return train_bpe_tokenizer(make_documents(50, seed=1), vocab_size=300)


@pytest.fixture
def shards(tmp_path):
    documents = make_documents(60)
    first = write_shard(tmp_path / "00.jsonl.zst", [pile_record(text) for text in documents[:30]])
    second = write_shard(tmp_path / "01.jsonl.zst", [pile_record(text, "FreeLaw") for text in documents[30:]])
    return [first, second]


def sample_rows(shards, tokenizer, seed=7, batch_size=64, n_samples=20):
    windows, report = sample_windows_from_shards(
        shards, tokenizer, window_length=24, n_samples=n_samples, seed=seed, split="member", batch_size=batch_size
    )
    return [(window.doc_id, window.token_offset, window.token_ids.tolist()) for window in windows], report


def test_sampling_same_seed_same_rows(shards, tokenizer):
    first, _ = sample_rows(shards, tokenizer)
    second, _ = sample_rows(shards, tokenizer)
    assert first == second
    assert len(first) == 20


def test_sampling_ignores_shard_order_and_batching(shards, tokenizer):
    reference, _ = sample_rows(shards, tokenizer)
    reordered, _ = sample_rows(list(reversed(shards)), tokenizer, batch_size=7)
    assert reordered == reference


def test_sampling_depends_on_seed(shards, tokenizer):
    first, _ = sample_rows(shards, tokenizer, seed=1)
    second, _ = sample_rows(shards, tokenizer, seed=2)
    assert first != second


def test_sampling_windows_have_exact_length_and_match_tokens(shards, tokenizer):
    rows, report = sample_rows(shards, tokenizer)
    texts = {f"{shard.name}:{index + 1}": text for shard, chunk in zip(shards, (make_documents(60)[:30], make_documents(60)[30:])) for index, text in enumerate(chunk)}
    for doc_id, offset, token_ids in rows:
        assert len(token_ids) == 24
        document_ids = tokenizer(texts[doc_id], add_special_tokens=False)["input_ids"]
        assert document_ids[offset : offset + 24] == token_ids
    assert report.selected == 20
    assert report.read.documents == 60


def test_sampling_counts_too_short_documents(tmp_path, tokenizer):
    shard = write_shard(tmp_path / "s.jsonl.zst", [pile_record("alpha beta")] + [pile_record(text) for text in make_documents(10)])
    _, report = sample_rows([shard], tokenizer, n_samples=5)
    assert report.too_short >= 1
    assert report.as_dict()["documents_kept"] == 11 - report.too_short


def test_sampling_rejects_more_members_than_corpus_supplies(shards, tokenizer):
    with pytest.raises(ExtractionError, match=r"requested 100000 member samples of 24 tokens.*supply only \d+ distinct windows"):
        sample_rows(shards, tokenizer, n_samples=100000)


def test_sampling_fails_above_invalid_share(tmp_path, tokenizer):
    records = [pile_record(text) for text in make_documents(20)] + ["{broken"] * 3 + [{"meta": {}}] * 2
    shard = write_shard(tmp_path / "bad.jsonl.zst", records)
    with pytest.raises(ExtractionError, match=r"5 of 25 lines in .*bad\.jsonl\.zst are invalid JSON or lack `text` \(20\.00%\)"):
        sample_windows_from_shards([shard], tokenizer, 24, 5, 0, "member", max_invalid_fraction=0.1)


def test_sampling_tolerates_invalid_share_below_limit(tmp_path, tokenizer):
    records = [pile_record(text) for text in make_documents(20)] + ["{broken"]
    shard = write_shard(tmp_path / "ok.jsonl.zst", records)
    _, report = sample_windows_from_shards([shard], tokenizer, 24, 5, 0, "member", max_invalid_fraction=0.1)
    assert report.read.skipped["invalid_json"] == 1


def test_duplicate_documents_sampled_once(tmp_path, tokenizer):
    documents = make_documents(10)
    first = write_shard(tmp_path / "a.jsonl.zst", [pile_record(text) for text in documents])
    second = write_shard(tmp_path / "b.jsonl.zst", [pile_record(text) for text in documents])
    windows, report = sample_windows_from_shards([first, second], tokenizer, 24, 10, 0, "member")
    keys = [(window.content_key, window.token_offset) for window in windows]
    assert len(set(keys)) == len(keys)
    assert report.duplicate_windows >= len(windows)


def test_sample_table_schema_lengths_and_provenance(tmp_path, shards, tokenizer):
    windows, report = sample_windows_from_shards(shards, tokenizer, 24, 12, 3, "member")
    table = windows_to_table(windows, tokenizer, assign_duplicates(len(windows), [1, 2, 4]))
    path = tmp_path / "members.parquet"
    write_parquet_atomic(path, table, {"config_digest": "abc", "tokenizer": "test"})

    read = pq.read_table(path)
    assert read.schema.remove_metadata() == SAMPLE_SCHEMA
    assert read.column("sample_id").to_pylist() == list(range(12))
    assert {len(ids) for ids in read.column("input_ids").to_pylist()} == {24}
    assert read.column("duplicates").to_pylist() == [1, 2, 4] * 4
    assert read.column("text").to_pylist()[0] == tokenizer.decode(read.column("input_ids").to_pylist()[0])
    assert read_parquet_provenance(path) == {"config_digest": "abc", "tokenizer": "test"}


def test_assign_duplicates_without_schedule_is_unknown():
    assert assign_duplicates(3, None) == [None, None, None]
