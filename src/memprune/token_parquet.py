"""Read token sequences from Parquet files that store one tokenized sequence per row.

EleutherAI publishes samples of Pythia's training data in this form. `pile-deduped-pythia-random-sampled`
has the columns `Index` (the sequence's position in the pre-tokenized training data) and `Tokens` (a list of
64 uint16 tokens), plus one memorization score column per model. `pythia-memorized-evals` has the columns
`index` and `tokens`. Only the index and token columns are read. The file is streamed one record batch at a
time, so a file of any size is read in bounded memory.

These files keep only 64 tokens of each sequence, so `max(prefix_lengths) + suffix_length` cannot exceed 64
with them. For longer contexts, read the same sequences from the pre-tokenized memmap (see
`memprune.memmap`), which contains all 2,049 tokens.
"""

import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm import tqdm

logger = logging.getLogger(__name__)

TOKENS_COLUMN_CANDIDATES = ("Tokens", "tokens")
INDEX_COLUMN_CANDIDATES = ("Index", "index")

_EXAMPLES_KEPT = 5


class TokenParquetError(ValueError):
    """Error raised when a token Parquet file is unreadable, lacks a column, or stores too few tokens."""


@dataclass
class TokenParquetCounts:
    """Row counts of one pass over a token Parquet file: rows read, yielded and left out.

    `examples` keeps, for each kind of left-out or irregular row, the first few row indices seen.
    """

    rows_read: int = 0
    rows_yielded: int = 0
    null_tokens: int = 0
    null_index: int = 0
    inconsistent_length: int = 0
    too_short: int = 0
    examples: dict[str, list[int]] = field(default_factory=dict)

    def note(self, kind: str, row_indices: np.ndarray) -> None:
        """Count rows of one kind and keep the first few of their indices as examples."""
        setattr(self, kind, getattr(self, kind) + len(row_indices))
        kept = self.examples.setdefault(kind, [])
        kept.extend(int(i) for i in row_indices[: _EXAMPLES_KEPT - len(kept)])


def _find_column(
    path: Path,
    names: list[str],
    requested: str,
    candidates: tuple[str, ...],
    role: str,
) -> str:
    """Return the column to read for one role, resolving `auto` among the candidate names.

    Args:
        path: the file, named in errors.
        names: the columns in the file.
        requested: a column name, or `auto` to pick the one candidate present.
        candidates: the names `auto` looks for.
        role: what the column contains, for messages (`tokens` or `index`).
    """
    if requested != "auto":
        if requested not in names:
            raise TokenParquetError(f"{path}: no {role} column {requested!r}; the file has columns {names}")
        return requested

    present = [name for name in candidates if name in names]
    if not present:
        raise TokenParquetError(
            f"{path}: found no {role} column; looked for {list(candidates)} in the file's columns {names}; "
            f"name the column with {role}_column"
        )
    if len(present) > 1:
        raise TokenParquetError(
            f"{path}: both {present} could be the {role} column; name the one to use with {role}_column"
        )

    return present[0]


class TokenParquetRows:
    """Iterable of the `(index, tokens)` pairs in the rows of a token Parquet file.

    The file, its columns and its stored sequence length are checked when this object is made, so a bad
    file or a study that needs more tokens than the file stores fails before any work starts. Iterating
    streams the file. Each pass counts the rows it read and left out in `counts`, and logs a summary.

    Rows are yielded in file order. `index` is the value of the index column (the sequence's position in
    the training data), or the row number when `index_column` is None. `tokens` is a numpy array of the
    stored integer dtype containing the row's whole stored sequence. Rows are left out, counted and logged
    when their tokens or index are null, or when they contain fewer than `needed_length` tokens. Rows whose
    length differs from the file's stored length (that of its first row) are counted and logged as
    inconsistent, and still yielded when long enough.

    Args:
        path: the Parquet file.
        tokens_column: the column of token lists, or `auto` to use `Tokens` or `tokens`.
        index_column: the column of sequence indices, `auto` to use `Index` or `index`, or None to number
            rows from 0 instead.
        needed_length: the minimum number of tokens in a usable row, `max(prefix_lengths) + suffix_length`.
            None accepts rows of any length.
        batch_size: rows per record batch read from the file.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        tokens_column: str = "auto",
        index_column: str | None = "auto",
        needed_length: int | None = None,
        batch_size: int = 65536,
    ):
        self.path = Path(path)
        self.needed_length = needed_length
        self.batch_size = batch_size
        self.counts = TokenParquetCounts()

        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: token Parquet file not found")
        try:
            self._file = pq.ParquetFile(self.path)
        except (pa.ArrowInvalid, OSError) as error:
            raise TokenParquetError(f"{self.path}: not a readable Parquet file ({error})") from error

        schema = self._file.schema_arrow
        names = list(schema.names)
        self.tokens_column = _find_column(self.path, names, tokens_column, TOKENS_COLUMN_CANDIDATES, "tokens")
        self.index_column = None
        if index_column is not None:
            self.index_column = _find_column(self.path, names, index_column, INDEX_COLUMN_CANDIDATES, "index")

        self._check_column_types(schema)

        self.num_rows = self._file.metadata.num_rows
        self.stored_length = self._first_stored_length()
        self._check_needed_length()

        ignored = [name for name in names if name not in (self.tokens_column, self.index_column)]
        logger.info(
            "%s: %d rows, %s tokens per sequence in column %r, index column %r; %d other columns not read",
            self.path,
            self.num_rows,
            self.stored_length,
            self.tokens_column,
            self.index_column,
            len(ignored),
        )

    def _check_column_types(self, schema: pa.Schema) -> None:
        """Raise unless the tokens column contains lists of integers and the index column integers."""
        tokens_type = schema.field(self.tokens_column).type
        is_list = (
            pa.types.is_list(tokens_type)
            or pa.types.is_large_list(tokens_type)
            or pa.types.is_fixed_size_list(tokens_type)
        )
        if not is_list or not pa.types.is_integer(tokens_type.value_type):
            raise TokenParquetError(
                f"{self.path}: column {self.tokens_column!r} has type {tokens_type}; "
                "expected a list of integer tokens"
            )

        if self.index_column is None:
            return
        index_type = schema.field(self.index_column).type
        if not pa.types.is_integer(index_type):
            raise TokenParquetError(
                f"{self.path}: index column {self.index_column!r} has type {index_type}; expected integers"
            )

    def _first_stored_length(self) -> int | None:
        """Return the token count of the first row with tokens, or None when no row has any."""
        tokens_type = self._file.schema_arrow.field(self.tokens_column).type
        if pa.types.is_fixed_size_list(tokens_type):
            return tokens_type.list_size

        for batch in self._file.iter_batches(batch_size=1024, columns=[self.tokens_column]):
            lengths = pc.drop_null(pc.list_value_length(batch.column(0)))
            if len(lengths) > 0:
                return lengths[0].as_py()

        logger.warning("%s: no row with tokens found", self.path)
        return None

    def _check_needed_length(self) -> None:
        """Raise when the file stores fewer tokens per sequence than the study needs."""
        if self.needed_length is None or self.stored_length is None:
            return
        if self.stored_length >= self.needed_length:
            return

        raise TokenParquetError(
            f"{self.path}: this file stores only {self.stored_length} tokens per sequence (column "
            f"{self.tokens_column!r}), so max(prefix_lengths) + suffix_length = {self.needed_length} cannot "
            f"exceed {self.stored_length}; lower the prefix or suffix lengths, or read these sequences from "
            "the pre-tokenized memmap, which stores all 2,049 tokens"
        )

    def __len__(self) -> int:
        """Return the number of rows in the file, before any are left out."""
        return self.num_rows

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        """Stream the file and yield `(index, tokens)` for every usable row."""
        self.counts = TokenParquetCounts()
        columns = [self.tokens_column] + ([self.index_column] if self.index_column is not None else [])
        started = time.monotonic()
        first_row = 0

        batches = self._file.iter_batches(batch_size=self.batch_size, columns=columns)
        few_batches = self.num_rows < 10 * self.batch_size
        with tqdm(total=self.num_rows, desc=self.path.name, unit="row", disable=few_batches) as progress:
            for batch in batches:
                yield from self._batch_rows(batch, first_row)
                first_row += batch.num_rows
                progress.update(batch.num_rows)

        self._log_summary(time.monotonic() - started)

    def _batch_rows(self, batch: pa.RecordBatch, first_row: int) -> Iterator[tuple[int, np.ndarray]]:
        """Check one record batch, count what it leaves out, and yield its usable rows."""
        tokens = batch.column(self.tokens_column)
        row_count = batch.num_rows
        self.counts.rows_read += row_count

        if self.index_column is None:
            indices = np.arange(first_row, first_row + row_count, dtype=np.int64)
            index_valid = np.ones(row_count, dtype=bool)
        else:
            index_array = batch.column(self.index_column)
            index_valid = ~index_array.is_null().to_numpy(zero_copy_only=False)
            indices = index_array.fill_null(-1).to_numpy().astype(np.int64)
        row_numbers = np.arange(first_row, first_row + row_count)

        tokens_valid = ~tokens.is_null().to_numpy(zero_copy_only=False)
        lengths = pc.list_value_length(tokens).fill_null(0).to_numpy().astype(np.int64)
        flat = tokens.flatten()
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        if flat.null_count:
            position = int(np.flatnonzero(flat.is_null().to_numpy(zero_copy_only=False))[0])
            row = int(np.searchsorted(starts, position, side="right") - 1)
            raise TokenParquetError(
                f"{self.path}: row {first_row + row} (index {indices[row]}) contains a null token in column "
                f"{self.tokens_column!r}; every token must be a vocabulary id"
            )
        values = flat.to_numpy()

        if len(values) and np.issubdtype(values.dtype, np.signedinteger) and values.min() < 0:
            position = int(np.flatnonzero(values < 0)[0])
            row = int(np.searchsorted(starts, position, side="right") - 1)
            raise TokenParquetError(
                f"{self.path}: row {first_row + row} (index {indices[row]}) contains the negative token "
                f"{values[position]} in column {self.tokens_column!r}; tokens are vocabulary ids, 0 or more"
            )

        self.counts.note("null_tokens", row_numbers[~tokens_valid])
        self.counts.note("null_index", row_numbers[tokens_valid & ~index_valid])
        usable = tokens_valid & index_valid
        if self.stored_length is not None:
            self.counts.note("inconsistent_length", indices[usable & (lengths != self.stored_length)])
        if self.needed_length is not None:
            short = usable & (lengths < self.needed_length)
            self.counts.note("too_short", indices[short])
            usable &= ~short

        for row in np.flatnonzero(usable):
            self.counts.rows_yielded += 1
            yield int(indices[row]), values[starts[row] : starts[row] + lengths[row]]

    def _log_summary(self, seconds: float) -> None:
        """Log what a finished pass read, yielded and left out."""
        counts = self.counts
        logger.info(
            "%s: read %d rows, yielded %d in %.1f s",
            self.path,
            counts.rows_read,
            counts.rows_yielded,
            seconds,
        )

        messages = {
            "null_tokens": "rows with null tokens were left out (row numbers)",
            "null_index": "rows with a null index were left out (row numbers)",
            "inconsistent_length": f"rows contain a token count other than {self.stored_length} (indices)",
            "too_short": f"rows contain fewer than {self.needed_length} tokens and were left out (indices)",
        }
        for kind, message in messages.items():
            count = getattr(counts, kind)
            if count:
                logger.warning("%s: %d %s, first: %s", self.path, count, message, counts.examples[kind])


def read_token_parquet(
    path: str | os.PathLike,
    tokens_column: str = "auto",
    index_column: str | None = "auto",
    needed_length: int | None = None,
    batch_size: int = 65536,
) -> TokenParquetRows:
    """Open a token Parquet file and return its rows as an iterable of `(index, tokens)` pairs.

    The file, its columns and `needed_length` against the stored sequence length are checked now. The
    rows are read as the result is iterated. See `TokenParquetRows` for the rows yielded, left out and
    counted.

    Args:
        path: the Parquet file.
        tokens_column: the column of token lists, or `auto` to use `Tokens` or `tokens`.
        index_column: the column of sequence indices, `auto` to use `Index` or `index`, or None to number
            rows from 0 instead.
        needed_length: the minimum number of tokens in a usable row, `max(prefix_lengths) + suffix_length`.
            None accepts rows of any length.
        batch_size: rows per record batch read from the file.
    """
    return TokenParquetRows(path, tokens_column, index_column, needed_length, batch_size)
