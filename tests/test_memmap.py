"""Tests of the memory-mapped indexed dataset reader and writer, on real file pairs written in tmp_path."""

import struct

import numpy as np
import pytest

from memprune.memmap import (
    HEADER_BYTES,
    MMapIndexedDataset,
    MMapIndexError,
    parse_revision_step,
    sample_sequences,
    sequences_seen_by_step,
    write_mmap_indexed_dataset,
)

SEQUENCE_LENGTH = 2049


@pytest.fixture
def pythia_like(tmp_path):
    """50 sequences of 2,049 uint16 tokens, written in Pythia's format; returns (prefix, sequences)."""
    rng = np.random.default_rng(0)
    sequences = [rng.integers(0, 50277, size=SEQUENCE_LENGTH, dtype=np.uint16) for _ in range(50)]
    prefix = tmp_path / "pile" / "document"
    write_mmap_indexed_dataset(prefix, sequences)
    return prefix, sequences


def test_write_then_read_returns_equal_sequences(pythia_like):
    prefix, sequences = pythia_like

    dataset = MMapIndexedDataset(prefix)

    assert len(dataset) == 50
    assert dataset.dtype == np.uint16
    assert dataset.sizes.tolist() == [SEQUENCE_LENGTH] * 50
    assert dataset.document_index.tolist() == list(range(51))
    for i, expected in enumerate(sequences):
        assert np.array_equal(dataset.sequence(i), expected)
    assert np.array_equal(dataset[49], sequences[49])


def test_write_produces_the_documented_byte_layout(pythia_like):
    prefix, _ = pythia_like
    index_bytes = prefix.with_name("document.idx").read_bytes()

    magic, version, dtype_code, count, document_count = struct.unpack("<9sQBQQ", index_bytes[:HEADER_BYTES])

    assert (magic, version, dtype_code, count, document_count) == (b"MMIDIDX\x00\x00", 1, 8, 50, 51)
    assert len(index_bytes) == HEADER_BYTES + 50 * 4 + 50 * 8 + 51 * 8
    pointers = np.frombuffer(index_bytes, dtype="<i8", count=50, offset=HEADER_BYTES + 50 * 4)
    assert pointers[:3].tolist() == [0, 2 * SEQUENCE_LENGTH, 4 * SEQUENCE_LENGTH]
    assert prefix.with_name("document.bin").stat().st_size == 50 * SEQUENCE_LENGTH * 2


def test_reader_reads_a_hand_built_int32_index(tmp_path):
    tokens = np.array([7, 8, 9, 100000, 5], dtype="<i4")
    (tmp_path / "hand.bin").write_bytes(tokens.tobytes())
    header = struct.pack("<9sQBQQ", b"MMIDIDX\x00\x00", 1, 4, 2, 3)
    arrays = (
        np.array([3, 2], dtype="<i4").tobytes()
        + np.array([0, 12], dtype="<i8").tobytes()
        + np.array([0, 1, 2], dtype="<i8").tobytes()
    )
    (tmp_path / "hand.idx").write_bytes(header + arrays)

    dataset = MMapIndexedDataset(tmp_path / "hand")

    assert dataset.dtype == np.int32
    assert dataset.sequence(0).tolist() == [7, 8, 9]
    assert dataset.sequence(1).tolist() == [100000, 5]


def test_prefix_with_idx_suffix_opens_the_same_pair(pythia_like):
    prefix, sequences = pythia_like

    dataset = MMapIndexedDataset(str(prefix) + ".idx")

    assert np.array_equal(dataset.sequence(3), sequences[3])


def test_empty_dataset_opens_with_no_sequences(tmp_path):
    write_mmap_indexed_dataset(tmp_path / "empty", [])

    dataset = MMapIndexedDataset(tmp_path / "empty")

    assert len(dataset) == 0


def test_sequence_is_read_only(pythia_like):
    dataset = MMapIndexedDataset(pythia_like[0])

    with pytest.raises(ValueError):
        dataset.sequence(0)[0] = 1


def test_sequence_out_of_range_names_file(pythia_like):
    dataset = MMapIndexedDataset(pythia_like[0])

    with pytest.raises(MMapIndexError, match=r"document\.idx: sequence index 50 out of range.*0 to 49"):
        dataset.sequence(50)
    with pytest.raises(MMapIndexError, match="sequence index -1 out of range"):
        dataset.sequence(-1)


def test_missing_bin_file_is_named(pythia_like):
    prefix, _ = pythia_like
    prefix.with_name("document.bin").unlink()

    with pytest.raises(MMapIndexError, match=r"document\.bin: file not found"):
        MMapIndexedDataset(prefix)


def test_missing_idx_file_is_named(tmp_path):
    with pytest.raises(MMapIndexError, match=r"nothing\.idx: file not found"):
        MMapIndexedDataset(tmp_path / "nothing")


def _patch_index(prefix, offset, new_bytes):
    """Overwrite bytes of the `.idx` file at `offset`."""
    path = prefix.with_name("document.idx")
    data = bytearray(path.read_bytes())
    data[offset : offset + len(new_bytes)] = new_bytes
    path.write_bytes(bytes(data))


def test_wrong_magic_is_rejected_naming_the_index(pythia_like):
    prefix, _ = pythia_like
    _patch_index(prefix, 0, b"NOTANIDX\x00")

    with pytest.raises(MMapIndexError, match=r"document\.idx: not a memory-mapped indexed dataset index"):
        MMapIndexedDataset(prefix)


def test_version_2_is_rejected_naming_the_index(pythia_like):
    prefix, _ = pythia_like
    _patch_index(prefix, 9, struct.pack("<Q", 2))

    with pytest.raises(MMapIndexError, match=r"document\.idx: unsupported index version 2"):
        MMapIndexedDataset(prefix)


def test_unknown_dtype_code_is_rejected_listing_valid_codes(pythia_like):
    prefix, _ = pythia_like
    _patch_index(prefix, 17, struct.pack("<B", 99))

    expected = r"document\.idx: unknown dtype code 99; valid codes are 1 \(uint8\)"
    with pytest.raises(MMapIndexError, match=expected):
        MMapIndexedDataset(prefix)


def test_truncated_index_is_rejected_with_sizes(pythia_like):
    prefix, _ = pythia_like
    path = prefix.with_name("document.idx")
    path.write_bytes(path.read_bytes()[:-10])
    size = HEADER_BYTES + 50 * 4 + 50 * 8 + 51 * 8
    expected = rf"document\.idx: index truncated.*need {size} bytes.*has {size - 10}"

    with pytest.raises(MMapIndexError, match=expected):
        MMapIndexedDataset(prefix)


def test_index_shorter_than_header_is_rejected(pythia_like):
    prefix, _ = pythia_like
    prefix.with_name("document.idx").write_bytes(b"MMIDIDX")

    with pytest.raises(MMapIndexError, match=r"document\.idx: index truncated, 7 bytes"):
        MMapIndexedDataset(prefix)


def test_truncated_bin_is_rejected(pythia_like):
    prefix, _ = pythia_like
    path = prefix.with_name("document.bin")
    path.write_bytes(path.read_bytes()[:-2])

    expected = rf"document\.bin: data file truncated.*has {50 * SEQUENCE_LENGTH * 2 - 2} bytes"
    with pytest.raises(MMapIndexError, match=expected):
        MMapIndexedDataset(prefix)


def test_write_rejects_values_outside_dtype(tmp_path):
    with pytest.raises(MMapIndexError, match=r"sequence 1 contains values that uint16 cannot store"):
        write_mmap_indexed_dataset(tmp_path / "bad", [[1, 2], [70000]])

    assert not (tmp_path / "bad.idx").exists()
    assert not (tmp_path / "bad.bin").exists()


def test_sample_sequences_is_deterministic_and_seed_dependent(pythia_like):
    dataset = MMapIndexedDataset(pythia_like[0])

    first = sample_sequences(dataset, 10, seed=3)
    again = sample_sequences(dataset, 10, seed=3)
    other = sample_sequences(dataset, 10, seed=4)

    assert first == again
    assert first != other
    assert first == sorted(set(first))
    assert all(0 <= i < 50 for i in first)


def test_sample_sequences_stays_below_max_index(pythia_like):
    dataset = MMapIndexedDataset(pythia_like[0])

    chosen = sample_sequences(dataset, 20, seed=0, max_index=20)

    assert chosen == list(range(20))
    assert max(sample_sequences(dataset, 5, seed=1, max_index=7)) < 7


def test_sample_sequences_errors_with_both_counts(pythia_like):
    dataset = MMapIndexedDataset(pythia_like[0])

    with pytest.raises(MMapIndexError, match=r"cannot sample 11 sequences; only 10 sequences below index 10"):
        sample_sequences(dataset, 11, seed=0, max_index=10)
    with pytest.raises(MMapIndexError, match="max_index 51 is outside the dataset, which contains 50"):
        sample_sequences(dataset, 1, seed=0, max_index=51)


def test_sample_sequences_skips_sequences_shorter_than_min_length(tmp_path):
    lengths = [5, 1, 5, 1, 5, 1, 5, 1]
    write_mmap_indexed_dataset(tmp_path / "mixed", [np.arange(length) for length in lengths])
    dataset = MMapIndexedDataset(tmp_path / "mixed")

    chosen = sample_sequences(dataset, 4, seed=0, min_length=5)

    assert chosen == [0, 2, 4, 6]
    with pytest.raises(MMapIndexError, match="cannot sample 3 sequences; only 2 .* at least 5 tokens"):
        sample_sequences(dataset, 3, seed=0, max_index=4, min_length=5)


def test_sequences_seen_by_step_values():
    assert sequences_seen_by_step(0) == 0
    assert sequences_seen_by_step(1) == 1024
    assert sequences_seen_by_step(143000) == 146_432_000
    assert sequences_seen_by_step(3, batch_size=8) == 24
    with pytest.raises(ValueError, match="step must be 0 or more, got -1"):
        sequences_seen_by_step(-1)


def test_parse_revision_step_reads_step_names_and_main():
    assert parse_revision_step("step143000") == 143000
    assert parse_revision_step("step0") == 0
    assert parse_revision_step("main") == 143000
    assert parse_revision_step("main", main_step=500) == 500
    with pytest.raises(ValueError, match="revision 'v1.0' names no training step"):
        parse_revision_step("v1.0")


def test_sample_sequences_ignores_chunk_size(tmp_path, monkeypatch):
    lengths = [(i * 7) % 10 for i in range(40)]
    write_mmap_indexed_dataset(tmp_path / "mixed", [np.arange(length) for length in lengths])
    dataset = MMapIndexedDataset(tmp_path / "mixed")
    whole = sample_sequences(dataset, 12, seed=5, max_index=35, min_length=4)

    monkeypatch.setattr("memprune.memmap._SIZES_CHUNK", 3)
    chunked = sample_sequences(dataset, 12, seed=5, max_index=35, min_length=4)

    assert chunked == whole
    assert all(lengths[i] >= 4 and i < 35 for i in whole)
