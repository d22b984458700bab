"""Read Pythia's pre-tokenized training data: Megatron's memory-mapped indexed dataset.

Pythia's training order is published as a pair of files, `document.idx` and `document.bin`, addressed by
their common path prefix (`.../document`). The index contains a small header and three arrays, and the binary
file contains the tokens of every sequence back to back. Layout of the index (all integers little-endian):

    magic            9 bytes   b"MMIDIDX\\x00\\x00"
    version          uint64    1
    dtype code       uint8     1 uint8, 2 int8, 3 int16, 4 int32, 5 int64, 6 float64, 7 float32, 8 uint16
    sequence count   uint64    n
    document count   uint64    d
    sizes            int32[n]  tokens per sequence
    pointers         int64[n]  byte offset of each sequence in the .bin file
    document index   int64[d]  sequence index where each document starts (Megatron writes 0, ..., n)

Every sequence of Pythia's files is 2,049 tokens (a 2,048-token context plus the shifted target), and the
batch size is 1,024 sequences, so training step `s` consumed sequences `[s * 1024, (s + 1) * 1024)`.

Both files are read through numpy memory maps: opening a dataset reads only the 34-byte header and the
last index entry, and a sequence is read only when requested. A Pythia `.bin` file is hundreds of gigabytes, so nothing here ever
reads a file whole.
"""

import logging
import os
import re
import struct
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from tqdm import tqdm

logger = logging.getLogger(__name__)

INDEX_MAGIC = b"MMIDIDX\x00\x00"
INDEX_VERSION = 1
HEADER_FORMAT = "<9sQBQQ"
HEADER_BYTES = struct.calcsize(HEADER_FORMAT)

DTYPE_CODES: dict[int, np.dtype] = {
    1: np.dtype(np.uint8),
    2: np.dtype(np.int8),
    3: np.dtype(np.int16),
    4: np.dtype(np.int32),
    5: np.dtype(np.int64),
    6: np.dtype(np.float64),
    7: np.dtype(np.float32),
    8: np.dtype(np.uint16),
}

PYTHIA_SEQUENCE_LENGTH = 2049
PYTHIA_BATCH_SIZE = 1024
PYTHIA_FINAL_STEP = 143000

_SIZES_CHUNK = 1 << 22


class MMapIndexError(ValueError):
    """Error raised when an indexed dataset is missing or malformed, or a request falls outside it."""


def _paths_for_prefix(prefix: str | os.PathLike) -> tuple[Path, Path]:
    """Return the `.idx` and `.bin` paths of a dataset prefix.

    Args:
        prefix: the common path of the two files, without suffix (`.../document`). A path that already ends
            in `.idx` or `.bin` is accepted and its suffix dropped.
    """
    prefix = Path(prefix)
    if prefix.suffix in (".idx", ".bin"):
        prefix = prefix.with_suffix("")

    return prefix.with_name(prefix.name + ".idx"), prefix.with_name(prefix.name + ".bin")


def _dtype_code(dtype: np.dtype) -> int:
    """Return the index file's code for a numpy dtype, or raise naming the supported dtypes."""
    for code, known in DTYPE_CODES.items():
        if known == dtype:
            return code

    supported = ", ".join(str(known) for known in DTYPE_CODES.values())
    raise MMapIndexError(f"dtype {dtype} cannot be stored in an indexed dataset; supported: {supported}")


class MMapIndexedDataset:
    """A read-only view of a Megatron memory-mapped indexed dataset (`prefix.idx` and `prefix.bin`).

    The whole file pair is validated when it is opened, from the header and the last pointer only, so
    opening a Pythia dataset takes milliseconds. `sequence(i)` returns a read-only numpy view into the
    memory-mapped `.bin` file; copy it (`np.array(...)`) to keep it past the dataset's lifetime.

    Args:
        prefix: the common path of the two files, without suffix (`.../document`).
    """

    def __init__(self, prefix: str | os.PathLike):
        self.index_path, self.bin_path = _paths_for_prefix(prefix)

        for path in (self.index_path, self.bin_path):
            if not path.is_file():
                raise MMapIndexError(
                    f"{path}: file not found; an indexed dataset at prefix {self.index_path.with_suffix('')} "
                    "needs both a .idx and a .bin file"
                )

        index_size = self.index_path.stat().st_size
        if index_size < HEADER_BYTES:
            raise MMapIndexError(
                f"{self.index_path}: index truncated, {index_size} bytes is shorter than the "
                f"{HEADER_BYTES}-byte header"
            )

        with open(self.index_path, "rb") as stream:
            header = stream.read(HEADER_BYTES)
        magic, version, dtype_code, count, document_count = struct.unpack(HEADER_FORMAT, header)

        if magic != INDEX_MAGIC:
            raise MMapIndexError(
                f"{self.index_path}: not a memory-mapped indexed dataset index; expected the magic bytes "
                f"{INDEX_MAGIC!r} at the start, found {magic!r}"
            )
        if version != INDEX_VERSION:
            raise MMapIndexError(
                f"{self.index_path}: unsupported index version {version}; "
                f"only version {INDEX_VERSION} is supported"
            )
        if dtype_code not in DTYPE_CODES:
            raise MMapIndexError(
                f"{self.index_path}: unknown dtype code {dtype_code}; valid codes are "
                + ", ".join(f"{code} ({dtype})" for code, dtype in DTYPE_CODES.items())
            )
        self._dtype = DTYPE_CODES[dtype_code]

        expected_size = HEADER_BYTES + count * 4 + count * 8 + document_count * 8
        if index_size < expected_size:
            raise MMapIndexError(
                f"{self.index_path}: index truncated; its header announces {count} sequences and "
                f"{document_count} documents, which need {expected_size} bytes, but the file has {index_size}"
            )
        if index_size > expected_size:
            logger.warning(
                "%s: %d bytes after the arrays the header announces are ignored",
                self.index_path,
                index_size - expected_size,
            )

        index_buffer = np.memmap(self.index_path, dtype=np.uint8, mode="r")
        offset = HEADER_BYTES
        self._sizes = np.frombuffer(index_buffer, dtype="<i4", count=count, offset=offset)
        offset += count * 4
        self._pointers = np.frombuffer(index_buffer, dtype="<i8", count=count, offset=offset)
        offset += count * 8
        self._document_index = np.frombuffer(index_buffer, dtype="<i8", count=document_count, offset=offset)

        bin_size = self.bin_path.stat().st_size
        needed_bin_size = 0
        if count > 0:
            needed_bin_size = int(self._pointers[-1]) + int(self._sizes[-1]) * self._dtype.itemsize
        if needed_bin_size > bin_size:
            raise MMapIndexError(
                f"{self.bin_path}: data file truncated: {self.index_path} places the end of the last "
                f"sequence at byte {needed_bin_size}, but the file has {bin_size} bytes"
            )

        # numpy cannot map an empty file, and an empty .bin is valid only when every sequence is empty.
        if bin_size == 0:
            self._bin_buffer = np.zeros(0, dtype=np.uint8)
        else:
            self._bin_buffer = np.memmap(self.bin_path, dtype=np.uint8, mode="r")

        logger.debug(
            "opened %s: %d sequences, %d documents, dtype %s",
            self.index_path,
            count,
            document_count,
            self._dtype,
        )

    def __len__(self) -> int:
        """Return the number of sequences."""
        return len(self._sizes)

    def __repr__(self) -> str:
        prefix = str(self.index_path.with_suffix(""))
        return f"MMapIndexedDataset({prefix!r}, sequences={len(self)}, dtype={self._dtype})"

    @property
    def sizes(self) -> np.ndarray:
        """Tokens per sequence, an int32 array memory-mapped from the index (not read until used)."""
        return self._sizes

    @property
    def dtype(self) -> np.dtype:
        """The numpy dtype of the stored tokens (uint16 for Pythia)."""
        return self._dtype

    @property
    def document_index(self) -> np.ndarray:
        """The sequence index at which each document starts, an int64 array memory-mapped from the index."""
        return self._document_index

    def sequence(self, i: int) -> np.ndarray:
        """Return the tokens of sequence `i` as a read-only view into the `.bin` file.

        Args:
            i: sequence index in `[0, len(self))`; negative indices are not accepted.
        """
        i = int(i)
        if not 0 <= i < len(self):
            raise MMapIndexError(
                f"{self.index_path}: sequence index {i} out of range; the dataset contains {len(self)} "
                f"sequences, valid indices are 0 to {len(self) - 1}"
            )

        pointer = int(self._pointers[i])
        size = int(self._sizes[i])
        end = pointer + size * self._dtype.itemsize
        if pointer < 0 or size < 0 or end > len(self._bin_buffer):
            raise MMapIndexError(
                f"{self.index_path}: sequence {i} has pointer {pointer} and size {size}, which fall outside "
                f"{self.bin_path} ({len(self._bin_buffer)} bytes)"
            )

        return np.frombuffer(self._bin_buffer, dtype=self._dtype, count=size, offset=pointer)

    def __getitem__(self, i: int) -> np.ndarray:
        """Same as `sequence(i)`."""
        return self.sequence(i)


def write_mmap_indexed_dataset(
    prefix: str | os.PathLike,
    sequences: Iterable[Iterable[int] | np.ndarray],
    dtype: np.dtype | type = np.uint16,
) -> tuple[Path, Path]:
    """Write sequences as a memory-mapped indexed dataset in the format Pythia's files use.

    Each sequence becomes its own document. Both files are written under temporary names and renamed when
    complete, so an interrupted write never leaves a readable but partial dataset.

    Args:
        prefix: the common path of the two files, without suffix; parent folders are created.
        sequences: an iterable of token sequences (lists or arrays of integers), written in order.
        dtype: the stored token dtype; every value must fit in it exactly.

    Returns:
        The paths of the written `.idx` and `.bin` files.
    """
    index_path, bin_path = _paths_for_prefix(prefix)
    dtype = np.dtype(dtype)
    dtype_code = _dtype_code(dtype)
    index_path.parent.mkdir(parents=True, exist_ok=True)

    sizes: list[int] = []
    pointers: list[int] = []
    bin_partial = bin_path.with_name(bin_path.name + ".partial")
    index_partial = index_path.with_name(index_path.name + ".partial")

    try:
        offset = 0
        with open(bin_partial, "wb") as stream:
            for number, sequence in enumerate(sequences):
                values = np.asarray(sequence)
                if values.ndim != 1:
                    raise MMapIndexError(
                        f"{bin_path}: sequence {number} has shape {values.shape}; each sequence must be 1-D"
                    )
                tokens = values.astype(dtype)
                if not np.array_equal(tokens, values):
                    raise MMapIndexError(
                        f"{bin_path}: sequence {number} contains values that {dtype} cannot store exactly "
                        f"(range {values.min()} to {values.max()})"
                    )

                stream.write(tokens.astype(dtype.newbyteorder("<")).tobytes())
                sizes.append(len(tokens))
                pointers.append(offset)
                offset += len(tokens) * dtype.itemsize

        count = len(sizes)
        document_index = np.arange(count + 1, dtype="<i8")
        with open(index_partial, "wb") as stream:
            stream.write(struct.pack(HEADER_FORMAT, INDEX_MAGIC, INDEX_VERSION, dtype_code, count, count + 1))
            stream.write(np.asarray(sizes, dtype="<i4").tobytes())
            stream.write(np.asarray(pointers, dtype="<i8").tobytes())
            stream.write(document_index.tobytes())

        os.replace(bin_partial, bin_path)
        os.replace(index_partial, index_path)
    finally:
        bin_partial.unlink(missing_ok=True)
        index_partial.unlink(missing_ok=True)

    logger.info("wrote %d sequences (%d bytes of %s tokens) to %s", count, offset, dtype, bin_path)
    return index_path, bin_path


def sequences_seen_by_step(step: int, batch_size: int = PYTHIA_BATCH_SIZE) -> int:
    """Return how many training sequences a checkpoint has seen: `step * batch_size`.

    Pythia's checkpoint `stepN` is saved after N optimizer steps. Steps are numbered from 0, and step `s`
    consumed sequences `[s * batch_size, (s + 1) * batch_size)`, so the N steps before checkpoint `stepN`
    consumed exactly sequences `[0, N * batch_size)`. Sequence `N * batch_size` is the first one the
    checkpoint has not trained on, and `step0` (the initialization) has seen none.

    Args:
        step: the checkpoint's step number, 0 or more.
        batch_size: sequences per optimizer step (1,024 for every Pythia model).
    """
    if step < 0:
        raise ValueError(f"step must be 0 or more, got {step}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be 1 or more, got {batch_size}")

    return step * batch_size


def parse_revision_step(revision: str, main_step: int = PYTHIA_FINAL_STEP) -> int:
    """Return the training step of a checkpoint revision name.

    Args:
        revision: `stepN` (Pythia publishes `step0` to `step143000`), or `main`, the final checkpoint.
        main_step: the step that `main` stands for; 143,000 for Pythia.
    """
    if revision == "main":
        return main_step

    match = re.fullmatch(r"step(\d+)", revision)
    if match is None:
        raise ValueError(
            f"revision {revision!r} names no training step; expected 'main' or 'stepN' such as 'step143000'"
        )

    return int(match.group(1))


def _count_long_enough(sizes: np.ndarray, max_index: int, min_length: int) -> np.ndarray:
    """Count, for each chunk of `sizes[:max_index]`, the sequences with at least `min_length` tokens."""
    starts = range(0, max_index, _SIZES_CHUNK)
    counts = np.zeros(len(starts), dtype=np.int64)
    progress = tqdm(starts, desc="counting sequence lengths", unit="chunk", disable=len(starts) < 4)
    for chunk, start in enumerate(progress):
        stop = min(start + _SIZES_CHUNK, max_index)
        counts[chunk] = np.count_nonzero(sizes[start:stop] >= min_length)

    return counts


def sample_sequences(
    dataset: MMapIndexedDataset,
    n: int,
    seed: int,
    max_index: int | None = None,
    min_length: int = 0,
) -> list[int]:
    """Choose `n` distinct sequence indices, deterministically for a given seed.

    The choice is uniform among the sequences in `[0, max_index)` that contain at least `min_length` tokens.
    Memory stays bounded by the chunk size and `n`, whatever the dataset size: lengths are counted chunk by
    chunk, ranks among the eligible sequences are drawn, and the ranks are mapped back to indices.

    Args:
        dataset: the dataset to sample from.
        n: how many indices to return.
        seed: seed of the numpy random generator; the same seed, dataset and arguments give the same indices.
        max_index: sample only below this index, for example `sequences_seen_by_step(step)` to stay within
            what a checkpoint has trained on. Defaults to the whole dataset.
        min_length: sample only sequences with at least this many tokens, for example
            `max(prefix_lengths) + suffix_length`. 0 skips the length check and leaves `sizes` unread.

    Returns:
        The chosen indices, sorted ascending, so reading them walks the `.bin` file forward.
    """
    if n < 0:
        raise ValueError(f"n must be 0 or more, got {n}")
    if max_index is None:
        max_index = len(dataset)
    if not 0 <= max_index <= len(dataset):
        raise MMapIndexError(
            f"{dataset.index_path}: max_index {max_index} is outside the dataset, which contains "
            f"{len(dataset)} sequences. A checkpoint whose step and batch size point past the end of the "
            "data was not trained on this data"
        )

    if min_length > 0:
        chunk_counts = _count_long_enough(dataset.sizes, max_index, min_length)
        available = int(chunk_counts.sum())
    else:
        chunk_counts = None
        available = max_index

    excluded = max_index - available
    if excluded:
        logger.info(
            "%s: %d of %d sequences below index %d contain fewer than %d tokens and are not sampled",
            dataset.index_path,
            excluded,
            max_index,
            max_index,
            min_length,
        )
    if n > available:
        raise MMapIndexError(
            f"{dataset.index_path}: cannot sample {n} sequences; only {available} sequences below index "
            f"{max_index} contain at least {min_length} tokens"
        )

    rng = np.random.default_rng(seed)
    ranks = np.sort(rng.choice(available, size=n, replace=False))
    if chunk_counts is None:
        return [int(rank) for rank in ranks]

    # Map each rank among the eligible sequences back to its index, one chunk of sizes at a time.
    indices: list[int] = []
    chunk_ends = np.cumsum(chunk_counts)
    chunk_of_rank = np.searchsorted(chunk_ends, ranks, side="right")
    for chunk in np.unique(chunk_of_rank):
        start = int(chunk) * _SIZES_CHUNK
        eligible = np.flatnonzero(dataset.sizes[start : min(start + _SIZES_CHUNK, max_index)] >= min_length)
        first_rank = int(chunk_ends[chunk] - chunk_counts[chunk])
        chunk_ranks = ranks[chunk_of_rank == chunk] - first_rank
        indices.extend(int(start + position) for position in eligible[chunk_ranks])

    return indices
