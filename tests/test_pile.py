"""Streaming reads of Pile-format shards, with every skipped line counted by reason."""

import pytest

from conftest import pile_record, write_shard
from memprune.pile import ReadStats, ShardError, iter_shard, iter_shards


def test_iter_shard_counts_each_skip_reason(tmp_path):
    shard = write_shard(
        tmp_path / "a.jsonl.zst",
        [
            pile_record("first document"),
            "{not json",
            {"meta": {"pile_set_name": "Github"}},
            {"text": 42},
            pile_record("   "),
            "",
            pile_record("second document", "FreeLaw"),
        ],
    )
    stats = ReadStats()
    documents = list(iter_shard(shard, stats))

    assert [document.text for document in documents] == ["first document", "second document"]
    assert [document.doc_id for document in documents] == ["a.jsonl.zst:1", "a.jsonl.zst:7"]
    assert documents[1].pile_set_name == "FreeLaw"
    assert stats.lines == 7
    assert stats.documents == 2
    assert stats.skipped["invalid_json"] == 1
    assert stats.skipped["missing_text"] == 2
    assert stats.skipped["empty"] == 2
    assert stats.invalid == 3


def test_iter_shard_reads_plain_jsonl(tmp_path):
    shard = write_shard(tmp_path / "a.jsonl", [pile_record("plain text")])
    assert [document.text for document in iter_shard(shard, ReadStats())] == ["plain text"]


def test_iter_shards_filters_pile_set_names(tmp_path):
    first = write_shard(tmp_path / "a.jsonl.zst", [pile_record("code", "Github"), pile_record("law", "FreeLaw")])
    second = write_shard(tmp_path / "b.jsonl.zst", [pile_record("more law", "FreeLaw")])
    stats = ReadStats()
    texts = [document.text for document in iter_shards([first, second], stats, pile_set_names=["FreeLaw"])]

    assert texts == ["law", "more law"]
    assert stats.skipped["filtered_set"] == 1


def test_iter_shard_rejects_file_that_is_not_zstd(tmp_path):
    shard = tmp_path / "fake.jsonl.zst"
    shard.write_text('{"text": "not compressed"}\n')
    with pytest.raises(ShardError, match=r"fake\.jsonl\.zst: not a zstd file"):
        list(iter_shard(shard, ReadStats()))


def test_iter_shard_names_file_of_corrupt_zstd(tmp_path):
    shard = write_shard(tmp_path / "broken.jsonl.zst", [pile_record("x" * 5000)])
    payload = shard.read_bytes()
    shard.write_bytes(payload[: len(payload) // 2])
    with pytest.raises(ShardError, match=r"broken\.jsonl\.zst: the zstd stream ends inside a frame"):
        list(iter_shard(shard, ReadStats()))


def test_iter_shard_missing_file(tmp_path):
    with pytest.raises(ShardError, match="shard not found"):
        list(iter_shard(tmp_path / "absent.jsonl.zst", ReadStats()))
