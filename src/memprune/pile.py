"""Stream documents from The Pile's shard format: JSON lines, optionally zstd-compressed.

Each line of a shard is an object with `text` and `meta.pile_set_name`. Shards are read line by line
through a streaming zstd decoder, so a 14 GB shard never sits in memory. Lines that cannot be used are
skipped and counted by reason; the caller decides whether the skipped share is acceptable.
"""

from __future__ import annotations

import codecs
import json
import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import zstandard

log = logging.getLogger(__name__)

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"

#: Reasons a line is skipped; every skip is counted under one of these.
SKIP_REASONS = ("invalid_json", "missing_text", "empty", "filtered_set")


class ShardError(ValueError):
    """A shard cannot be read at all (missing, not zstd, corrupt)."""


@dataclass(frozen=True)
class PileDocument:
    """One document of a Pile shard.

    `doc_id` is `<shard file name>:<line number>` (1-based), so it names the record in error
    messages and does not depend on the order in which shards are read.
    """

    doc_id: str
    shard: str
    pile_set_name: str
    text: str


@dataclass
class ReadStats:
    """Counts of lines read, documents yielded and lines skipped by reason."""

    lines: int = 0
    documents: int = 0
    skipped: Counter = field(default_factory=Counter)

    @property
    def invalid(self) -> int:
        """Lines that are malformed records (not valid JSON, or without a `text` string)."""
        return self.skipped["invalid_json"] + self.skipped["missing_text"]

    def as_dict(self) -> dict:
        return {
            "lines": self.lines,
            "documents": self.documents,
            "skipped": {reason: self.skipped[reason] for reason in SKIP_REASONS},
        }


READ_CHUNK_BYTES = 1 << 20


def _check_zstd_magic(path: Path) -> None:
    with path.open("rb") as stream:
        magic = stream.read(4)
    if magic != ZSTD_MAGIC:
        raise ShardError(
            f"{path}: not a zstd file (first bytes {magic!r}, expected {ZSTD_MAGIC!r}); "
            "Pile shards ending in .zst must be zstd-compressed JSON lines"
        )


def _iter_zstd_chunks(path: Path) -> Iterator[bytes]:
    """Yield the decompressed bytes of every frame of a zstd file, failing on a truncated frame.

    The streaming reader of `zstandard` stops quietly at a truncated frame, which would drop the
    end of a damaged shard without a word, so frames are decoded here with explicit end checks.
    """
    decompressor = zstandard.ZstdDecompressor()
    decoder = decompressor.decompressobj()
    inside_frame = False
    with path.open("rb") as stream:
        while chunk := stream.read(READ_CHUNK_BYTES):
            while chunk:
                inside_frame = True
                output = decoder.decompress(chunk)
                if output:
                    yield output
                if not decoder.eof:
                    break
                chunk = decoder.unused_data
                decoder = decompressor.decompressobj()
                inside_frame = False
    if inside_frame:
        raise ShardError(f"{path}: the zstd stream ends inside a frame (truncated or corrupt file)")


def _iter_lines(path: Path) -> Iterator[str]:
    """Yield the UTF-8 lines of a `.jsonl` or `.jsonl.zst` shard without holding it in memory."""
    if not path.is_file():
        raise ShardError(f"shard not found: {path}")

    if path.suffix == ".zst":
        _check_zstd_magic(path)
        chunks = _iter_zstd_chunks(path)
    else:
        chunks = _iter_plain_chunks(path)

    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    pending = ""
    for chunk in chunks:
        pending += decoder.decode(chunk)
        *lines, pending = pending.split("\n")
        yield from lines
    pending += decoder.decode(b"", final=True)
    if pending:
        yield pending


def _iter_plain_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as stream:
        while chunk := stream.read(READ_CHUNK_BYTES):
            yield chunk


def iter_shard(
    path: str | Path,
    stats: ReadStats,
    pile_set_names: Iterable[str] | None = None,
) -> Iterator[PileDocument]:
    """Yield the usable documents of one shard, counting every skipped line in `stats`.

    Args:
        path: a `.jsonl` or `.jsonl.zst` file.
        stats: updated in place with lines read, documents yielded and skips by reason.
        pile_set_names: when given, only documents of these subsets are yielded; the others are
            counted as `filtered_set`.

    Raises:
        ShardError: the file is missing, not zstd, corrupt or not UTF-8. The message names the file
            and the line reached.
    """
    path = Path(path)
    selected_sets = set(pile_set_names) if pile_set_names else None
    line_number = 0

    try:
        for line_number, line in enumerate(_iter_lines(path), start=1):
            stats.lines += 1
            document = _parse_line(line, path, line_number, stats, selected_sets)
            if document is not None:
                stats.documents += 1
                yield document
    except (zstandard.ZstdError, UnicodeDecodeError, OSError) as error:
        raise ShardError(f"{path}: cannot read past line {line_number}: {error}") from error


def _parse_line(
    line: str, path: Path, line_number: int, stats: ReadStats, selected_sets: set[str] | None
) -> PileDocument | None:
    if not line.strip():
        stats.skipped["empty"] += 1
        return None

    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        stats.skipped["invalid_json"] += 1
        log.debug("%s:%d: invalid JSON, skipped", path, line_number)
        return None

    text = record.get("text") if isinstance(record, dict) else None
    if not isinstance(text, str):
        stats.skipped["missing_text"] += 1
        log.debug("%s:%d: no `text` string, skipped", path, line_number)
        return None
    if not text.strip():
        stats.skipped["empty"] += 1
        return None

    meta = record.get("meta")
    pile_set_name = meta.get("pile_set_name") if isinstance(meta, dict) else None
    pile_set_name = pile_set_name if isinstance(pile_set_name, str) else "unknown"
    if selected_sets is not None and pile_set_name not in selected_sets:
        stats.skipped["filtered_set"] += 1
        return None

    return PileDocument(f"{path.name}:{line_number}", path.name, pile_set_name, text)


def iter_shards(
    paths: Iterable[str | Path],
    stats: ReadStats,
    pile_set_names: Iterable[str] | None = None,
) -> Iterator[PileDocument]:
    """Yield the documents of several shards in turn (see `iter_shard`)."""
    for path in paths:
        log.info("reading shard %s", path)
        yield from iter_shard(path, stats, pile_set_names)
