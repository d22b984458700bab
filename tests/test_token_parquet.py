"""Tests of the token Parquet reader, on real Parquet files laid out like EleutherAI's published ones."""

import logging

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from memprune.token_parquet import TokenParquetError, read_token_parquet


def _random_sampled_file(path, rows=10, length=64, row_group_size=4):
    """Write a file shaped like pile-deduped-pythia-random-sampled; return its token lists."""
    rng = np.random.default_rng(1)
    tokens = [rng.integers(0, 50277, size=length).tolist() for _ in range(rows)]
    table = pa.table(
        {
            "Index": pa.array([1000 + 7 * i for i in range(rows)], type=pa.int64()),
            "Tokens": pa.array(tokens, type=pa.list_(pa.uint16())),
            "70M": pa.array(rng.random(rows)),
            "160M": pa.array(rng.random(rows)),
        }
    )
    pq.write_table(table, path, row_group_size=row_group_size)
    return tokens


def test_random_sampled_layout_streams_index_and_tokens(tmp_path):
    path = tmp_path / "random_sampled.parquet"
    tokens = _random_sampled_file(path)

    rows = read_token_parquet(path, needed_length=64, batch_size=3)
    pairs = list(rows)

    assert rows.tokens_column == "Tokens"
    assert rows.index_column == "Index"
    assert rows.stored_length == 64
    assert len(rows) == 10
    assert [index for index, _ in pairs] == [1000 + 7 * i for i in range(10)]
    assert all(array.dtype == np.uint16 for _, array in pairs)
    assert [array.tolist() for _, array in pairs] == tokens
    assert (rows.counts.rows_read, rows.counts.rows_yielded) == (10, 10)


def test_memorized_evals_layout_with_lowercase_columns(tmp_path):
    path = tmp_path / "memorized.parquet"
    table = pa.table({"index": [3, 9], "tokens": [list(range(64)), list(range(100, 164))]})
    pq.write_table(table, path)

    pairs = list(read_token_parquet(path, needed_length=40))

    assert [index for index, _ in pairs] == [3, 9]
    assert pairs[1][1][:3].tolist() == [100, 101, 102]
    assert len(pairs[1][1]) == 64


def test_named_columns_and_row_numbers_as_index(tmp_path):
    path = tmp_path / "custom.parquet"
    pq.write_table(pa.table({"ids": [[1, 2, 3], [4, 5, 6]], "note": ["a", "b"]}), path)

    pairs = list(read_token_parquet(path, tokens_column="ids", index_column=None))

    assert [(index, array.tolist()) for index, array in pairs] == [(0, [1, 2, 3]), (1, [4, 5, 6])]


def test_fixed_size_list_column_is_read(tmp_path):
    path = tmp_path / "fixed.parquet"
    tokens = pa.array([[1, 2], [3, 4]], type=pa.list_(pa.int32(), 2))
    pq.write_table(pa.table({"index": [0, 1], "tokens": tokens}), path)

    rows = read_token_parquet(path)

    assert rows.stored_length == 2
    assert [array.tolist() for _, array in rows] == [[1, 2], [3, 4]]


def test_missing_tokens_column_lists_columns(tmp_path):
    path = tmp_path / "no_tokens.parquet"
    pq.write_table(pa.table({"Index": [1], "text": ["hello"]}), path)

    expected = r"no_tokens\.parquet: found no tokens column.*'Index', 'text'"
    with pytest.raises(TokenParquetError, match=expected):
        read_token_parquet(path)
    with pytest.raises(TokenParquetError, match=r"no tokens column 'ids'; the file has columns \['Index'"):
        read_token_parquet(path, tokens_column="ids")


def test_missing_index_column_rejected(tmp_path):
    path = tmp_path / "no_index.parquet"
    pq.write_table(pa.table({"tokens": [[1, 2]]}), path)

    with pytest.raises(TokenParquetError, match=r"found no index column; looked for \['Index', 'index'\]"):
        read_token_parquet(path)
    assert [index for index, _ in read_token_parquet(path, index_column=None)] == [0]


def test_stored_length_below_needed_explains(tmp_path):
    path = tmp_path / "random_sampled.parquet"
    _random_sampled_file(path)

    expected = (
        r"random_sampled\.parquet: this file stores only 64 tokens per sequence .*"
        r"max\(prefix_lengths\) \+ suffix_length = 82 cannot exceed 64"
    )
    with pytest.raises(TokenParquetError, match=expected):
        read_token_parquet(path, needed_length=82)


def test_not_a_parquet_file_is_named(tmp_path):
    path = tmp_path / "tokens.parquet"
    path.write_text("Index,Tokens\n1,2\n")

    with pytest.raises(TokenParquetError, match=r"tokens\.parquet: not a readable Parquet file"):
        read_token_parquet(path)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"absent\.parquet: token Parquet file not found"):
        read_token_parquet(tmp_path / "absent.parquet")


def test_non_integer_tokens_are_rejected(tmp_path):
    path = tmp_path / "floats.parquet"
    pq.write_table(pa.table({"index": [0], "tokens": [[0.5, 1.5]]}), path)

    with pytest.raises(TokenParquetError, match=r"column 'tokens' has type list<element: double>"):
        read_token_parquet(path)


def test_negative_token_names_the_row(tmp_path):
    path = tmp_path / "negative.parquet"
    pq.write_table(pa.table({"index": [10, 11], "tokens": [[1, 2], [3, -4]]}), path)

    with pytest.raises(TokenParquetError, match=r"row 1 \(index 11\) contains the negative token -4"):
        list(read_token_parquet(path))


def test_null_token_inside_a_row_names_the_row(tmp_path):
    path = tmp_path / "null_token.parquet"
    pq.write_table(pa.table({"index": [10, 11, 12], "tokens": [[1, 2], None, [3, None]]}), path)

    with pytest.raises(TokenParquetError, match=r"row 2 \(index 12\) contains a null token"):
        list(read_token_parquet(path))


def test_irregular_rows_are_counted_and_reported(tmp_path, caplog):
    path = tmp_path / "irregular.parquet"
    tokens = [list(range(6)), list(range(4)), None, list(range(8)), list(range(6))]
    pq.write_table(pa.table({"index": [0, 1, 2, 3, None], "tokens": tokens}), path)

    rows = read_token_parquet(path, needed_length=5)
    with caplog.at_level(logging.WARNING, logger="memprune.token_parquet"):
        pairs = list(rows)

    assert [(index, len(array)) for index, array in pairs] == [(0, 6), (3, 8)]
    counts = rows.counts
    assert (counts.rows_read, counts.rows_yielded) == (5, 2)
    assert counts.null_tokens == 1
    assert counts.null_index == 1
    assert counts.inconsistent_length == 2
    assert counts.too_short == 1
    assert counts.examples["inconsistent_length"] == [1, 3]
    assert counts.examples["too_short"] == [1]
    assert "2 rows contain a token count other than 6 (indices), first: [1, 3]" in caplog.text
    assert "1 rows contain fewer than 5 tokens and were left out (indices), first: [1]" in caplog.text
