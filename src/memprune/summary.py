"""Summary tables: extraction rates, perplexity and membership inference per pruned model and prefix length.

`build_summary` turns the scores tables of every (model, strategy, sparsity) into one row per prefix
length k. A row has the extraction rate of members with its Wilson 95% interval, match statistics and the
non-member extraction rate. It also has held-out perplexity, and the ROC AUC and TPR at 1% FPR of three
membership inference attacks. `build_duplication_table` breaks the member extraction rate down by how often each
sample is duplicated in the training data. The unpruned baseline is strategy `dense` at sparsity 0.

Before aggregating, each scores table is checked against the member and non-member tables: at every k,
its sample ids must be exactly the ids of those tables, so no sample is silently missing or extra.
"""

import logging
import math
import os
from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl
import pyarrow as pa

from memprune.mia import MIN_K_FRACTION, evaluate_attack, loss_scores, min_k_scores, texts_for_samples, zlib_scores
from memprune.scoring import SPLITS
from memprune.stats import wilson_interval

logger = logging.getLogger(__name__)

BASELINE_STRATEGY = "dense"
REQUIRED_SCORE_COLUMNS = (
    "sample_id", "split", "k", "exact_match", "match_length", "token_accuracy", "suffix_loss", "suffix_logprobs",
)
PERPLEXITY_KEYS = ("token_perplexity", "word_perplexity", "bits_per_byte")
ATTACKS = ("loss", "zlib", "min_k")

SUMMARY_SCHEMA = {
    "model": pl.String,
    "strategy": pl.String,
    "sparsity": pl.Int32,
    "k": pl.Int32,
    "n_members": pl.Int64,
    "n_extracted": pl.Int64,
    "extraction_rate": pl.Float64,
    "extraction_rate_low": pl.Float64,
    "extraction_rate_high": pl.Float64,
    "mean_match_length": pl.Float64,
    "mean_token_accuracy": pl.Float64,
    "nonmember_extraction_rate": pl.Float64,
    "token_perplexity": pl.Float64,
    "word_perplexity": pl.Float64,
    "bits_per_byte": pl.Float64,
    "mia_loss_auc": pl.Float64,
    "mia_loss_tpr_at_1fpr": pl.Float64,
    "mia_zlib_auc": pl.Float64,
    "mia_zlib_tpr_at_1fpr": pl.Float64,
    "mia_min_k_auc": pl.Float64,
    "mia_min_k_tpr_at_1fpr": pl.Float64,
    "n_nan_loss": pl.Int64,
}

DUPLICATION_SCHEMA = {
    "model": pl.String,
    "strategy": pl.String,
    "sparsity": pl.Int32,
    "k": pl.Int32,
    "duplicates": pl.Int32,
    "n": pl.Int64,
    "n_extracted": pl.Int64,
    "extraction_rate": pl.Float64,
    "extraction_rate_low": pl.Float64,
    "extraction_rate_high": pl.Float64,
}


def _load_table(table, default_name: str) -> tuple[pl.DataFrame, str]:
    """Return (DataFrame, name for messages) for a polars DataFrame, pyarrow Table or Parquet path."""
    if isinstance(table, pl.DataFrame):
        return table, default_name
    if isinstance(table, pa.Table):
        return pl.from_arrow(table), default_name
    if isinstance(table, (str, os.PathLike)):
        return pl.read_parquet(table), os.fspath(table)
    raise TypeError(
        f"{default_name}: expected a polars DataFrame, pyarrow Table or Parquet path, got {type(table).__name__}"
    )


def _sample_ids(table: pl.DataFrame, source: str) -> set[int]:
    """Return the sample ids of a members or non-members table, rejecting missing or duplicate ids."""
    if "sample_id" not in table.columns:
        raise ValueError(f"{source} has no sample_id column (columns: {table.columns})")

    ids = table["sample_id"]
    if ids.null_count():
        raise ValueError(f"{source} has {ids.null_count()} rows with a null sample_id")
    if ids.n_unique() != ids.len():
        raise ValueError(f"{source} has {ids.len() - ids.n_unique()} duplicate sample ids")
    return set(ids.to_list())


def _validate_key(model, strategy, sparsity) -> tuple[str, str, int]:
    """Check one (model, strategy, sparsity) key: names are strings, sparsity an integer percent 0..100."""
    if not isinstance(model, str) or not model:
        raise ValueError(f"model must be a non-empty string, got {model!r}")
    if not isinstance(strategy, str) or not strategy:
        raise ValueError(f"strategy must be a non-empty string, got {strategy!r} for model {model!r}")
    if isinstance(sparsity, bool) or not isinstance(sparsity, (int, np.integer)) or not 0 <= sparsity <= 100:
        raise ValueError(
            f"sparsity must be an integer percent between 0 and 100, got {sparsity!r} "
            f"for model {model!r}, strategy {strategy!r}"
        )
    if strategy == BASELINE_STRATEGY and sparsity != 0:
        raise ValueError(
            f"strategy {BASELINE_STRATEGY!r} is the unpruned baseline and needs sparsity 0, got {sparsity}"
        )
    return model, strategy, int(sparsity)


def _load_scores(entry: Sequence) -> tuple[tuple[str, str, int], pl.DataFrame, str]:
    """Unpack one (model, strategy, sparsity, scores) entry and check the scores table's columns and splits."""
    if len(entry) != 4:
        raise ValueError(
            f"each scores entry must be (model, strategy, sparsity_percent, table), got {len(entry)} items"
        )

    key = _validate_key(*entry[:3])
    default_name = f"scores of model={key[0]}, strategy={key[1]}, sparsity={key[2]}"
    table, source = _load_table(entry[3], default_name)

    if table.height == 0:
        raise ValueError(f"{source} has no rows; expected one row per sample and prefix length k")
    missing = [column for column in REQUIRED_SCORE_COLUMNS if column not in table.columns]
    if missing:
        raise ValueError(
            f"{source} is missing columns {missing}; expected a scores table with {list(REQUIRED_SCORE_COLUMNS)}"
        )

    unknown_splits = set(table["split"].unique().to_list()) - set(SPLITS)
    if unknown_splits:
        raise ValueError(f"{source} has split values {sorted(map(str, unknown_splits))}; valid splits are {SPLITS}")
    return key, table, source


def check_sample_ids(
    scores: pl.DataFrame, scores_source: str, split: str, expected_ids: set[int], samples_source: str
) -> None:
    """Check that, at every k, the scores of `split` cover exactly the sample ids of the samples table.

    Raises:
        ValueError: naming both tables, the split and k, with counts and examples of missing and extra ids.
    """
    rows = scores.filter(pl.col("split") == split)
    ks = sorted(scores["k"].unique().to_list())
    for k in ks:
        ids = rows.filter(pl.col("k") == k)["sample_id"]
        n_duplicates = ids.len() - ids.n_unique()
        id_set = set(ids.to_list())
        missing = sorted(expected_ids - id_set)
        extra = sorted(id_set - expected_ids)
        if missing or extra or n_duplicates:
            raise ValueError(
                f"sample ids of {scores_source} ({split} rows at k={k}) do not match {samples_source}: "
                f"{len(missing)} missing (first: {missing[:5]}), {len(extra)} extra (first: {extra[:5]}), "
                f"{n_duplicates} duplicated; rescore with the current {samples_source}"
            )


def _logprob_rows(rows: pl.DataFrame, source: str, split: str, k: int) -> np.ndarray | None:
    """Return the (N, S) suffix log-probs of some rows, or None (with a warning) where any is null."""
    logprobs = rows["suffix_logprobs"]
    n_null = logprobs.null_count()
    if n_null:
        logger.warning(
            "%s: %d %s rows at k=%d have no suffix_logprobs (generate-mode scores?); MIA metrics are NaN",
            source, n_null, split, k,
        )
        return None

    lengths = logprobs.list.len().unique().to_list()
    if len(lengths) != 1:
        raise ValueError(f"{source}: {split} rows at k={k} have suffix_logprobs of different lengths {sorted(lengths)}")
    return logprobs.explode().to_numpy().astype(np.float64).reshape(rows.height, lengths[0])


def _attack_metrics(
    members: pl.DataFrame,
    nonmembers: pl.DataFrame,
    suffix_texts: Mapping[str, Mapping[int, str]],
    source: str,
    k: int,
    fpr: float,
    min_k_fraction: float = MIN_K_FRACTION,
) -> dict[str, float]:
    """Compute AUC and TPR at `fpr` of the LOSS, zlib and Min-K% attacks at one prefix length."""
    metrics = {f"mia_{attack}_{name}": math.nan for attack in ATTACKS for name in ("auc", "tpr_at_1fpr")}
    if members.height == 0 or nonmembers.height == 0:
        return metrics

    member_logprobs = _logprob_rows(members, source, "member", k)
    nonmember_logprobs = _logprob_rows(nonmembers, source, "nonmember", k)
    if member_logprobs is None or nonmember_logprobs is None:
        return metrics

    member_texts = texts_for_samples(members["sample_id"].to_list(), suffix_texts.get("member", {}), "member")
    nonmember_texts = texts_for_samples(
        nonmembers["sample_id"].to_list(), suffix_texts.get("nonmember", {}), "nonmember"
    )
    attack_scores = {
        "loss": (loss_scores(member_logprobs), loss_scores(nonmember_logprobs)),
        "zlib": (zlib_scores(member_logprobs, member_texts), zlib_scores(nonmember_logprobs, nonmember_texts)),
        "min_k": (
            min_k_scores(member_logprobs, min_k_fraction),
            min_k_scores(nonmember_logprobs, min_k_fraction),
        ),
    }
    for attack, (member_scores, nonmember_scores) in attack_scores.items():
        result = evaluate_attack(member_scores, nonmember_scores, fpr=fpr)
        metrics[f"mia_{attack}_auc"] = result.auc
        metrics[f"mia_{attack}_tpr_at_1fpr"] = result.tpr_at_fpr
    return metrics


def _extraction_row(members: pl.DataFrame, confidence: float) -> dict:
    """Compute member counts, the extraction rate with its Wilson interval, and mean match statistics."""
    n_members = members.height
    n_extracted = int(members["exact_match"].sum())
    low, high = wilson_interval(n_extracted, n_members, confidence)
    return {
        "n_members": n_members,
        "n_extracted": n_extracted,
        "extraction_rate": n_extracted / n_members if n_members else math.nan,
        "extraction_rate_low": low,
        "extraction_rate_high": high,
        "mean_match_length": members["match_length"].cast(pl.Float64).mean(),
        "mean_token_accuracy": members["token_accuracy"].cast(pl.Float64).mean(),
    }


def build_summary(
    scores: Sequence[tuple],
    perplexities: Mapping[tuple[str, str, int], Mapping],
    suffix_texts: Mapping[str, Mapping[int, str]],
    members,
    nonmembers,
    members_source: str = "members table",
    nonmembers_source: str = "nonmembers table",
    fpr: float = 0.01,
    confidence: float = 0.95,
    min_k_fraction: float = MIN_K_FRACTION,
) -> pl.DataFrame:
    """Build the summary table: one row per model x strategy x sparsity x k.

    Args:
        scores: (model, strategy, sparsity_percent, scores) entries, where scores is a scores table
            (pyarrow Table, polars DataFrame, or the path of its Parquet file) with member and non-member rows.
        perplexities: perplexity dicts (as returned by `compute_perplexity`) keyed by
            (model, strategy, sparsity_percent). A missing key leaves that row's perplexity columns null
            and is logged.
        suffix_texts: {"member": {sample_id: text}, "nonmember": {...}}, the decoded suffix text of every
            sample, for the zlib attack (see `memprune.mia.decode_suffix_texts`).
        members: the members table (members.parquet as a table or path); only sample_id is read.
        nonmembers: the non-members table, likewise.
        members_source: name of the members table in error messages when it is not given as a path.
        nonmembers_source: likewise for the non-members table.
        fpr: false-positive rate for the TPR columns (named `_tpr_at_1fpr` for the default 0.01).
        confidence: confidence level of the Wilson interval on the extraction rate.
        min_k_fraction: share of lowest token log-probabilities averaged by the Min-K% attack.

    Returns:
        A polars DataFrame with the columns of `SUMMARY_SCHEMA`, sorted by model, strategy, sparsity, k.
        n_nan_loss counts rows of both splits at that k whose suffix_loss is NaN or infinite.

    Raises:
        ValueError: when a scores table's sample ids differ from the members or non-members table at any k
            (naming both and counting missing and extra ids), on duplicate (model, strategy, sparsity)
            entries, or on invalid keys.
    """
    members_table, members_source = _load_table(members, members_source)
    nonmembers_table, nonmembers_source = _load_table(nonmembers, nonmembers_source)
    member_ids = _sample_ids(members_table, members_source)
    nonmember_ids = _sample_ids(nonmembers_table, nonmembers_source)
    if not member_ids:
        raise ValueError(f"{members_source} has no samples, so no extraction rate can be computed")

    logger.info(
        "Building the summary of %d scores tables (%d members, %d non-members)",
        len(scores), len(member_ids), len(nonmember_ids),
    )
    rows = []
    seen_keys = set()
    missing_perplexity = []
    for entry in scores:
        key, table, source = _load_scores(entry)
        if key in seen_keys:
            raise ValueError(f"scores are given twice for model={key[0]}, strategy={key[1]}, sparsity={key[2]}")
        seen_keys.add(key)

        check_sample_ids(table, source, "member", member_ids, members_source)
        check_sample_ids(table, source, "nonmember", nonmember_ids, nonmembers_source)

        perplexity = perplexities.get(key)
        if perplexity is None:
            missing_perplexity.append(key)
            perplexity = {}

        for k in sorted(table["k"].unique().to_list()):
            at_k = table.filter(pl.col("k") == k)
            member_rows = at_k.filter(pl.col("split") == "member")
            nonmember_rows = at_k.filter(pl.col("split") == "nonmember")

            row = {"model": key[0], "strategy": key[1], "sparsity": key[2], "k": k}
            row.update(_extraction_row(member_rows, confidence))
            row["nonmember_extraction_rate"] = (
                nonmember_rows["exact_match"].cast(pl.Float64).mean() if nonmember_rows.height else math.nan
            )
            for name in PERPLEXITY_KEYS:
                row[name] = perplexity.get(name)
            row.update(_attack_metrics(member_rows, nonmember_rows, suffix_texts, source, k, fpr, min_k_fraction))
            row["n_nan_loss"] = int((~at_k["suffix_loss"].cast(pl.Float64).is_finite()).sum())
            rows.append(row)

    if missing_perplexity:
        logger.warning(
            "No perplexity for %d of %d scored models, left null: %s",
            len(missing_perplexity), len(seen_keys), missing_perplexity[:5],
        )
    summary = pl.DataFrame(rows, schema=SUMMARY_SCHEMA)
    summary = summary.sort(["model", "strategy", "sparsity", "k"])
    logger.info("Summary has %d rows", summary.height)
    return summary


def build_duplication_table(
    scores: Sequence[tuple],
    members,
    members_source: str = "members table",
    confidence: float = 0.95,
) -> pl.DataFrame:
    """Break the member extraction rate down by duplication count.

    Args:
        scores: (model, strategy, sparsity_percent, scores) entries, as for `build_summary`.
        members: the members table (or its Parquet path) with sample_id and duplicates columns.
        members_source: name of the members table in error messages when it is not given as a path.
        confidence: confidence level of the Wilson interval.

    Returns:
        A polars DataFrame with the columns of `DUPLICATION_SCHEMA`: one row per model x strategy x
        sparsity x k x duplicates, over members whose duplicates value is known. Members with a null
        duplicates value are left out and their count is logged.
    """
    members_table, members_source = _load_table(members, members_source)
    member_ids = _sample_ids(members_table, members_source)
    if "duplicates" not in members_table.columns:
        raise ValueError(f"{members_source} has no duplicates column (columns: {members_table.columns})")

    duplicates = members_table.select(pl.col("sample_id"), pl.col("duplicates").cast(pl.Int32))
    n_unknown = duplicates["duplicates"].null_count()
    if n_unknown:
        logger.warning(
            "%d of %d members in %s have an unknown duplicates count and are left out of the duplication table",
            n_unknown, duplicates.height, members_source,
        )
    duplicates = duplicates.drop_nulls("duplicates")

    rows = []
    for entry in scores:
        key, table, source = _load_scores(entry)
        check_sample_ids(table, source, "member", member_ids, members_source)

        groups = (
            table.filter(pl.col("split") == "member")
            .join(duplicates, on="sample_id", how="inner")
            .group_by(["k", "duplicates"])
            .agg(pl.len().alias("n"), pl.col("exact_match").sum().alias("n_extracted"))
            .sort(["k", "duplicates"])
        )
        for group in groups.iter_rows(named=True):
            low, high = wilson_interval(group["n_extracted"], group["n"], confidence)
            rows.append(
                {
                    "model": key[0],
                    "strategy": key[1],
                    "sparsity": key[2],
                    "k": group["k"],
                    "duplicates": group["duplicates"],
                    "n": group["n"],
                    "n_extracted": group["n_extracted"],
                    "extraction_rate": group["n_extracted"] / group["n"],
                    "extraction_rate_low": low,
                    "extraction_rate_high": high,
                }
            )

    table = pl.DataFrame(rows, schema=DUPLICATION_SCHEMA)
    return table.sort(["model", "strategy", "sparsity", "k", "duplicates"])
