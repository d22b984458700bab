"""Sample member and non-member sequences from Pile-format shards into Parquet tables.

A sample is a window of `max(prefix_lengths) + suffix_length` tokens cut from one document at a
multiple of the window length. The suffix is the window's last `suffix_length` tokens and the prefix
of length k the k tokens before it, so one row serves every k. Tokens come from the model's own
tokenizer with no BOS token, as Pythia was trained.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
from tqdm import tqdm

from memprune.pile import PileDocument, ReadStats, iter_shards
from memprune.sampling import Window, WindowReservoir, content_digest, split_into_windows, window_priority

log = logging.getLogger(__name__)

SAMPLE_SCHEMA = pa.schema(
    [
        ("sample_id", pa.int64()),
        ("source", pa.string()),
        ("doc_id", pa.string()),
        ("token_offset", pa.int64()),
        ("input_ids", pa.list_(pa.int32())),
        ("text", pa.string()),
        ("duplicates", pa.int32()),
    ]
)


class ExtractionError(ValueError):
    """The corpus cannot supply the requested sample, or too much of it is malformed."""


@dataclass
class ExtractionReport:
    """Counts of lines read, documents kept and skipped, and windows selected while sampling one split."""

    split: str
    read: ReadStats = field(default_factory=ReadStats)
    too_short: int = 0
    duplicate_windows: int = 0
    candidate_windows: int = 0
    selected: int = 0
    tokens_read: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict:
        read = self.read.as_dict()
        return {
            "split": self.split,
            "lines_read": read["lines"],
            "documents_read": read["documents"],
            "documents_too_short": self.too_short,
            "documents_kept": read["documents"] - self.too_short,
            "skipped_lines": read["skipped"],
            "candidate_windows": self.candidate_windows,
            "duplicate_windows": self.duplicate_windows,
            "selected": self.selected,
            "tokens_read": self.tokens_read,
            "seconds": round(self.seconds, 3),
        }


def _batched(documents: Iterable[PileDocument], size: int) -> Iterable[list[PileDocument]]:
    batch: list[PileDocument] = []
    for document in documents:
        batch.append(document)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def sample_windows_from_shards(
    paths: Sequence[str],
    tokenizer,
    window_length: int,
    n_samples: int,
    seed: int,
    split: str,
    pile_set_names: Iterable[str] | None = None,
    max_invalid_fraction: float = 0.01,
    batch_size: int = 64,
) -> tuple[list[Window], ExtractionReport]:
    """Stream shards, tokenize each document and keep a seeded sample of `n_samples` windows.

    Args:
        paths: Pile-format `.jsonl` / `.jsonl.zst` shards, read one line at a time.
        tokenizer: a Hugging Face tokenizer; called without special tokens, so no BOS is added.
        window_length: tokens per sample, `max(prefix_lengths) + suffix_length`.
        n_samples: how many windows to return.
        seed: sampling seed; the choice does not depend on shard or document order.
        split: `member` or `nonmember`, for messages.
        pile_set_names: optional subset filter on `meta.pile_set_name`.
        max_invalid_fraction: the run fails when more than this share of lines is invalid JSON or
            has no `text`.
        batch_size: documents per tokenizer call.

    Raises:
        ExtractionError: too many invalid lines, or fewer windows than `n_samples`; the message
            gives both counts.
    """
    report = ExtractionReport(split=split)
    reservoir = WindowReservoir(n_samples)
    started = time.perf_counter()

    documents = iter_shards(paths, report.read, pile_set_names)
    progress = tqdm(desc=f"tokenizing {split} documents", unit="doc", mininterval=2.0)
    for batch in _batched(documents, batch_size):
        encoded = tokenizer([document.text for document in batch], add_special_tokens=False)["input_ids"]
        for document, token_ids in zip(batch, encoded):
            report.tokens_read += len(token_ids)
            if len(token_ids) < window_length:
                report.too_short += 1
                continue
            content_key = content_digest(document.text)
            for offset, window_ids in split_into_windows(token_ids, window_length):
                reservoir.offer(
                    Window(
                        priority=window_priority(seed, content_key, offset),
                        content_key=content_key,
                        doc_id=document.doc_id,
                        source=document.pile_set_name,
                        token_offset=offset,
                        token_ids=np.asarray(window_ids, dtype=np.int32),
                    )
                )
        progress.update(len(batch))
    progress.close()

    report.seconds = time.perf_counter() - started
    report.candidate_windows = reservoir.candidates
    report.duplicate_windows = reservoir.duplicates
    report.selected = len(reservoir)
    _log_report(report)
    _check_invalid_share(report, paths, max_invalid_fraction)

    if len(reservoir) < n_samples:
        raise ExtractionError(
            f"requested {n_samples} {split} samples of {window_length} tokens, but {', '.join(map(str, paths))} "
            f"supply only {len(reservoir)} distinct windows ({report.read.documents - report.too_short} documents "
            f"long enough of {report.read.documents} read); lower n_{split}s or add shards"
        )
    return reservoir.windows(), report


def _log_report(report: ExtractionReport) -> None:
    summary = report.as_dict()
    log.info(
        "%s: read %d lines, %d documents; kept %d, too short %d; skipped lines %s; "
        "%d candidate windows (%d duplicates), %d selected; %d tokens in %.1f s (%.0f tokens/s)",
        report.split,
        summary["lines_read"],
        summary["documents_read"],
        summary["documents_kept"],
        summary["documents_too_short"],
        summary["skipped_lines"],
        summary["candidate_windows"],
        summary["duplicate_windows"],
        summary["selected"],
        summary["tokens_read"],
        report.seconds,
        report.tokens_read / max(report.seconds, 1e-9),
    )


def _check_invalid_share(report: ExtractionReport, paths: Sequence[str], max_invalid_fraction: float) -> None:
    lines = report.read.lines
    invalid = report.read.invalid
    if lines and invalid / lines > max_invalid_fraction:
        raise ExtractionError(
            f"{invalid} of {lines} lines in {', '.join(map(str, paths))} are invalid JSON or lack `text` "
            f"({invalid / lines:.2%}), above max_invalid_fraction={max_invalid_fraction}; fix the shards or "
            "raise the limit"
        )


def assign_duplicates(n_samples: int, schedule: Sequence[int] | None) -> list[int | None]:
    """Return each sample's training duplication count, cycling through `schedule` by sample id.

    Sample ids follow the hash priority, so the cycle spreads every count evenly over sources.
    Without a schedule the counts are unknown (None), as for a real Pile sample.
    """
    if not schedule:
        return [None] * n_samples
    return [int(schedule[index % len(schedule)]) for index in range(n_samples)]


def windows_to_table(windows: Sequence[Window], tokenizer, duplicates: Sequence[int | None]) -> pa.Table:
    """Build the sample table (schema `SAMPLE_SCHEMA`); `sample_id` is the rank in priority order."""
    # batch_decode of an empty list does not return an empty list in every tokenizer version.
    texts = tokenizer.batch_decode([window.token_ids.tolist() for window in windows]) if windows else []
    return pa.table(
        {
            "sample_id": np.arange(len(windows), dtype=np.int64),
            "source": [window.source for window in windows],
            "doc_id": [window.doc_id for window in windows],
            "token_offset": [window.token_offset for window in windows],
            "input_ids": [window.token_ids for window in windows],
            "text": texts,
            "duplicates": pa.array(list(duplicates), type=pa.int32()),
        },
        schema=SAMPLE_SCHEMA,
    )


def sample_split(
    corpus: dict,
    source: dict,
    tokenizer,
    window_length: int,
    n_samples: int,
    seed: int,
    split: str,
    default_max_step: int | None = None,
) -> tuple[list[Window], dict]:
    """Sample one split of a corpus config section, whatever its file format.

    Args:
        default_max_step: for Pythia memmaps without `max_step`, the training step of the scored
            checkpoint, so that every member is training data for that revision.

    Returns the windows in sample-id order and the extraction report as a dict.
    """
    file_format = split_format(corpus, source)
    if file_format == "pile_jsonl":
        windows, report = sample_windows_from_shards(
            source["paths"],
            tokenizer,
            window_length,
            n_samples,
            seed,
            split,
            pile_set_names=corpus.get("pile_set_names"),
            max_invalid_fraction=corpus.get("max_invalid_fraction", 0.01),
        )
        return windows, report.as_dict()
    if file_format == "pythia_memmap":
        return sample_windows_from_memmap(source, window_length, n_samples, seed, split, default_max_step)
    if file_format == "token_parquet":
        return sample_windows_from_token_parquet(source, window_length, n_samples, seed, split)
    raise ExtractionError(f"unknown format {file_format!r} of the {split} split; use pile_jsonl, pythia_memmap or token_parquet")


def split_format(corpus: dict, source: dict) -> str:
    """Return the file format of one split: its own `format`, else the corpus `format`."""
    return source.get("format", corpus.get("format", "pile_jsonl"))


def sample_windows_from_memmap(
    source: dict, window_length: int, n_samples: int, seed: int, split: str, default_max_step: int | None
) -> tuple[list[Window], dict]:
    """Sample whole-sequence windows from Pythia's pre-tokenized, pre-shuffled training data.

    A window starts `token_offset` tokens into a training sequence, so the prefix is exactly
    the context the model saw at training time. With a `max_step`, only sequences consumed before
    that checkpoint are eligible.
    """
    from memprune.memmap import MMapIndexedDataset, sample_sequences, sequences_seen_by_step

    if len(source["paths"]) != 1:
        raise ExtractionError(f"a pythia_memmap split takes one path prefix, got {len(source['paths'])}: {source['paths']}")
    prefix = source["paths"][0]
    offset = int(source.get("token_offset", 0))
    started = time.perf_counter()

    dataset = MMapIndexedDataset(prefix)
    max_step = source.get("max_step")
    if max_step is None:
        max_step = default_max_step
    max_index = min(sequences_seen_by_step(max_step), len(dataset)) if max_step is not None else len(dataset)
    indices = sample_sequences(dataset, n_samples, seed, max_index=max_index, min_length=offset + window_length)

    name = Path(prefix).name
    windows = [
        Window(
            priority=rank,
            content_key=f"{name}:{index}",
            doc_id=f"{name}:{index}",
            source="pythia_memmap",
            token_offset=offset,
            token_ids=np.asarray(dataset.sequence(index)[offset : offset + window_length], dtype=np.int32),
        )
        for rank, index in enumerate(indices)
    ]
    report = {
        "split": split,
        "format": "pythia_memmap",
        "sequences": len(dataset),
        "eligible_sequences": max_index,
        "max_step": max_step,
        "selected": len(windows),
        "seconds": round(time.perf_counter() - started, 3),
    }
    log.info("%s: sampled %d of %d eligible sequences (max_step %s) from %s", split, len(windows), max_index, max_step, prefix)
    return windows, report


def sample_windows_from_token_parquet(
    source: dict, window_length: int, n_samples: int, seed: int, split: str
) -> tuple[list[Window], dict]:
    """Sample windows from Parquet files with a token column, with the same seeded, order-free choice."""
    from memprune.token_parquet import read_token_parquet

    offset = int(source.get("token_offset", 0))
    reservoir = WindowReservoir(n_samples)
    counts = {}
    started = time.perf_counter()

    for path in source["paths"]:
        rows = read_token_parquet(
            path,
            tokens_column=source.get("tokens_column", "auto"),
            index_column=source.get("index_column", "auto"),
            needed_length=offset + window_length,
        )
        name = Path(path).name
        for index, tokens in rows:
            key = f"{name}:{index}"
            reservoir.offer(
                Window(
                    priority=window_priority(seed, key, offset),
                    content_key=key,
                    doc_id=key,
                    source="token_parquet",
                    token_offset=offset,
                    token_ids=np.asarray(tokens[offset : offset + window_length], dtype=np.int32),
                )
            )
        counts[str(path)] = {"rows": rows.num_rows, **vars(rows.counts)}

    if len(reservoir) < n_samples:
        raise ExtractionError(
            f"requested {n_samples} {split} samples, but {', '.join(map(str, source['paths']))} supply only "
            f"{len(reservoir)} rows with at least {offset + window_length} tokens"
        )
    report = {
        "split": split,
        "format": "token_parquet",
        "files": counts,
        "candidate_windows": reservoir.candidates,
        "selected": len(reservoir),
        "seconds": round(time.perf_counter() - started, 3),
    }
    return reservoir.windows(), report
