"""Data stages: the demo tokenizer, member and non-member sampling, and perplexity documents."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from memprune.provenance import make_provenance, write_json_atomic, write_parquet_atomic
from memprune.stages.common import load_scoring_tokenizer, checkpoint_step

log = logging.getLogger(__name__)


def run_train_tokenizer(shards: list[str], vocab_size: int, out_dir: str) -> None:
    """Train the demo tokenizer on every document of the member shards."""
    from memprune.demo_model import train_bpe_tokenizer
    from memprune.pile import ReadStats, iter_shards

    started = time.perf_counter()
    stats = ReadStats()
    texts = (document.text for document in iter_shards(shards, stats))
    tokenizer = train_bpe_tokenizer(texts, vocab_size)
    tokenizer.save_pretrained(out_dir)
    log.info(
        "trained a %d-entry byte-level BPE tokenizer on %d documents (%s skipped lines) in %.1f s",
        len(tokenizer), stats.documents, dict(stats.skipped), time.perf_counter() - started,
    )


def run_extract(
    corpus: dict,
    corpus_name: str,
    tokenizer_model: str,
    tokenizer_spec: dict,
    tokenizer_files: list[str],
    window_length: int,
    seed: int,
    members_path: str,
    nonmembers_path: str,
    background_path: str,
    report_path: str,
) -> None:
    """Sample the member, non-member and background tables of one corpus.

    Background windows come from the member split after the members in sampling order. The demo
    model trains on them besides the members, so it learns the language of the corpus; they are
    training data but are not scored.
    """
    from memprune.extraction import assign_duplicates, sample_split, windows_to_table

    tokenizer_dir = str(Path(tokenizer_files[0]).parent) if tokenizer_files else None
    tokenizer = load_scoring_tokenizer(tokenizer_model, tokenizer_spec, tokenizer_dir)
    digest_source = {"corpus": corpus, "window_length": window_length, "seed": seed, "tokenizer_model": tokenizer_model}
    schedule = corpus.get("duplicates_schedule")
    n_background = corpus.get("background_windows", 0)
    reports = {}

    for split, n_samples, out_path in (
        ("member", corpus["n_members"] + n_background, members_path),
        ("nonmember", corpus["n_nonmembers"], nonmembers_path),
    ):
        source = corpus[f"{split}s"]
        if split == "member":
            log.info("sampling %d members and %d background windows together", corpus["n_members"], n_background)
        windows, report = sample_split(
            corpus, source, tokenizer, window_length, n_samples, seed, split, checkpoint_step(tokenizer_spec)
        )
        if split == "member":
            windows, background = windows[: corpus["n_members"]], windows[corpus["n_members"] :]
            duplicates = assign_duplicates(len(windows), schedule)
            background_table = windows_to_table(background, tokenizer, [1 if schedule else None] * len(background))
        else:
            # Non-members are never trained on: zero is a known count wherever counts are tracked.
            duplicates = [0 if schedule else None] * len(windows)

        table = windows_to_table(windows, tokenizer, duplicates)
        provenance = make_provenance(
            digest_source,
            corpus=corpus_name,
            split=split,
            tokenizer=getattr(tokenizer, "name_or_path", None) or tokenizer_model,
            tokenizer_model=tokenizer_model,
            window_length=window_length,
            extraction=report,
        )
        write_parquet_atomic(out_path, table, provenance)
        reports[split] = report
        log.info("wrote %d %s samples of %d tokens to %s", table.num_rows, split, window_length, out_path)

    write_parquet_atomic(background_path, background_table, make_provenance(digest_source, corpus=corpus_name, split="background"))
    log.info("wrote %d background training windows to %s", background_table.num_rows, background_path)
    write_json_atomic(report_path, {"corpus": corpus_name, "splits": reports, "provenance": make_provenance(digest_source)})


def run_perplexity_documents(
    corpus: dict,
    corpus_name: str,
    tokenizer_model: str,
    tokenizer_spec: dict,
    tokenizer_files: list[str],
    max_tokens: int | None,
    out_path: str,
) -> None:
    """Tokenize held-out documents, in shard order, until `max_tokens` tokens are collected."""
    import pyarrow as pa

    from memprune.pile import ReadStats, iter_shards

    tokenizer_dir = str(Path(tokenizer_files[0]).parent) if tokenizer_files else None
    tokenizer = load_scoring_tokenizer(tokenizer_model, tokenizer_spec, tokenizer_dir)
    source = corpus["nonmembers"]
    file_format = source.get("format", corpus.get("format", "pile_jsonl"))
    if file_format != "pile_jsonl":
        raise ValueError(
            f"corpus {corpus_name}: perplexity needs non-member documents in pile_jsonl format, not {file_format}"
        )

    stats = ReadStats()
    rows = {"doc_id": [], "source": [], "text": [], "input_ids": []}
    total_tokens = 0
    for document in iter_shards(source["paths"], stats, corpus.get("pile_set_names")):
        token_ids = tokenizer(document.text, add_special_tokens=False)["input_ids"]
        rows["doc_id"].append(document.doc_id)
        rows["source"].append(document.pile_set_name)
        rows["text"].append(document.text)
        rows["input_ids"].append(np.asarray(token_ids, dtype=np.int32))
        total_tokens += len(token_ids)
        if max_tokens is not None and total_tokens >= max_tokens:
            break

    if not rows["doc_id"]:
        raise ValueError(f"corpus {corpus_name}: no usable non-member document in {', '.join(source['paths'])}")
    table = pa.table({**rows, "input_ids": pa.array(rows["input_ids"], type=pa.list_(pa.int32()))})
    provenance = make_provenance(
        {"corpus": corpus, "max_tokens": max_tokens, "tokenizer_model": tokenizer_model},
        corpus=corpus_name,
        tokenizer_model=tokenizer_model,
        read=stats.as_dict(),
        tokens=total_tokens,
    )
    write_parquet_atomic(out_path, table, provenance)
    log.info("kept %d documents, %d tokens (budget %s); read %s", table.num_rows, total_tokens, max_tokens, stats.as_dict())
