"""Reporting stages: the summary tables and the figures."""

from __future__ import annotations

import json
import logging
from pathlib import Path


from memprune.provenance import make_provenance, write_csv_atomic, write_parquet_atomic
from memprune.stages.common import load_scoring_tokenizer, read_samples

log = logging.getLogger(__name__)


def run_aggregate(
    score_paths: list[str],
    perplexity_paths: list[str],
    members_paths: dict[str, str],
    nonmembers_paths: dict[str, str],
    tokenizer_loaders: dict[str, tuple],
    grid: list[tuple[str, str, int]],
    memorization: dict,
    membership_inference: dict,
    summary_parquet: str,
    summary_csv: str,
    duplication_parquet: str,
) -> None:
    """Join every grid cell's scores and perplexity into the summary and duplication tables.

    Args:
        members_paths / nonmembers_paths: sample tables per model.
        tokenizer_loaders: per model, the arguments of `load_scoring_tokenizer`, to decode suffix texts.
    """
    import polars as pl

    from memprune.mia import decode_suffix_texts
    from memprune.summary import build_duplication_table, build_summary

    perplexities = {}
    for cell, path in zip(grid, perplexity_paths):
        with open(path, encoding="utf-8") as stream:
            perplexities[cell] = json.load(stream)

    summaries, duplications = [], []
    for model in dict.fromkeys(model for model, _, _ in grid):
        tokenizer = load_scoring_tokenizer(*tokenizer_loaders[model])
        suffix_texts = {}
        for split, path in (("member", members_paths[model]), ("nonmember", nonmembers_paths[model])):
            sample_ids, input_ids = read_samples(path)
            suffix_texts[split] = decode_suffix_texts(
                sample_ids, input_ids, memorization["suffix_length"], tokenizer.decode
            )
        cells = [(cell, path) for cell, path in zip(grid, score_paths) if cell[0] == model]
        scores = [(*cell, path) for cell, path in cells]
        summaries.append(
            build_summary(
                scores,
                {cell: perplexities[cell] for cell, _ in cells},
                suffix_texts,
                members_paths[model],
                nonmembers_paths[model],
                min_k_fraction=membership_inference.get("min_k_fraction", 0.2),
            )
        )
        duplications.append(build_duplication_table(scores, members_paths[model]))

    summary = pl.concat(summaries)
    duplication = pl.concat(duplications)
    _write_polars(summary, summary_parquet, {"grid": grid, "memorization": memorization})
    _write_polars(duplication, duplication_parquet, {"grid": grid, "memorization": memorization})
    write_csv_atomic(summary_csv, summary)
    log.info("summary: %d rows, %d columns; duplication table: %d rows", summary.height, summary.width, duplication.height)


def _write_polars(frame, path: str, digest_source: dict) -> None:
    write_parquet_atomic(path, frame.to_arrow(), make_provenance(digest_source))


def run_figures(summary_path: str, duplication_path: str, out_dir: str, k: int, sparsity: int, expected: list[str]) -> None:
    """Render every figure and check that each file the workflow expects was written."""
    import polars as pl

    from memprune.plots.all_figures import make_all_figures

    summary = pl.read_parquet(summary_path)
    duplication = pl.read_parquet(duplication_path)
    written = {str(path) for path in make_all_figures(summary, duplication if duplication.height else None, out_dir, k, sparsity)}
    missing = [path for path in expected if str(Path(path)) not in {str(Path(item)) for item in written}]
    if missing:
        raise RuntimeError(f"figures not written: {', '.join(missing)}")
    log.info("wrote %d figure files to %s", len(written), out_dir)
