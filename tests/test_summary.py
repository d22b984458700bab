"""Tests of the summary and duplication tables on small hand-built scores tables."""

import logging
import math

import polars as pl
import pytest

from memprune.stats import wilson_interval
from memprune.summary import DUPLICATION_SCHEMA, SUMMARY_SCHEMA, build_duplication_table, build_summary

MEMBER_IDS = [1, 2, 3, 4]
NONMEMBER_IDS = [11, 12, 13]
SUFFIX_TEXTS = {
    "member": {sample_id: "same text" for sample_id in MEMBER_IDS},
    "nonmember": {sample_id: "same text" for sample_id in NONMEMBER_IDS},
}
PERPLEXITY = {"token_perplexity": 12.5, "word_perplexity": 30.0, "bits_per_byte": 1.25, "n_tokens": 100}


def scores_rows(k: int, member_exact, member_logprob, nonmember_exact, nonmember_logprob, member_loss=None):
    """Rows of one k: suffix length 2, every token of a sample with the same log-prob."""
    member_loss = member_loss or [-value for value in member_logprob]
    return pl.DataFrame(
        {
            "sample_id": MEMBER_IDS + NONMEMBER_IDS,
            "split": ["member"] * 4 + ["nonmember"] * 3,
            "k": [k] * 7,
            "exact_match": member_exact + nonmember_exact,
            "match_length": [2 if match else 1 for match in member_exact] + [0, 0, 0],
            "token_accuracy": [1.0 if match else 0.5 for match in member_exact] + [0.0, 0.0, 0.0],
            "suffix_loss": member_loss + [-value for value in nonmember_logprob],
            "suffix_logprobs": [[value, value] for value in member_logprob + nonmember_logprob],
        },
        schema_overrides={
            "k": pl.Int32,
            "match_length": pl.Int32,
            "token_accuracy": pl.Float32,
            "suffix_loss": pl.Float32,
            "suffix_logprobs": pl.List(pl.Float32),
        },
    )


@pytest.fixture
def scores_table() -> pl.DataFrame:
    """k=5: members have higher log-probs than non-members (AUC 1), one member loss is NaN.
    k=10: every member is extracted and the log-probs are reversed (AUC 0)."""
    at_5 = scores_rows(
        5,
        member_exact=[True, False, False, True],
        member_logprob=[-0.1, -0.2, -0.3, -0.4],
        nonmember_exact=[False, True, False],
        nonmember_logprob=[-1.0, -2.0, -3.0],
        member_loss=[0.1, 0.2, 0.3, math.nan],
    )
    at_10 = scores_rows(
        10,
        member_exact=[True, True, True, True],
        member_logprob=[-5.0, -6.0, -7.0, -8.0],
        nonmember_exact=[False, False, False],
        nonmember_logprob=[-0.5, -0.6, -0.7],
    )
    return pl.concat([at_5, at_10])


@pytest.fixture
def members() -> pl.DataFrame:
    return pl.DataFrame(
        {"sample_id": MEMBER_IDS, "duplicates": [1, 1, 5, None]}, schema_overrides={"duplicates": pl.Int32}
    )


@pytest.fixture
def nonmembers() -> pl.DataFrame:
    return pl.DataFrame({"sample_id": NONMEMBER_IDS})


def test_summary_columns_and_types(scores_table, members, nonmembers):
    summary = build_summary(
        [("tiny", "dense", 0, scores_table)], {("tiny", "dense", 0): PERPLEXITY}, SUFFIX_TEXTS, members, nonmembers
    )

    assert summary.columns == list(SUMMARY_SCHEMA)
    assert dict(summary.schema) == SUMMARY_SCHEMA
    assert summary["k"].to_list() == [5, 10]


def test_summary_values_at_each_k(scores_table, members, nonmembers):
    summary = build_summary(
        [("tiny", "dense", 0, scores_table)], {("tiny", "dense", 0): PERPLEXITY}, SUFFIX_TEXTS, members, nonmembers
    )
    at_5 = summary.row(0, named=True)
    at_10 = summary.row(1, named=True)
    low, high = wilson_interval(2, 4)

    assert (at_5["model"], at_5["strategy"], at_5["sparsity"]) == ("tiny", "dense", 0)
    assert at_5["n_members"] == 4
    assert at_5["n_extracted"] == 2
    assert at_5["extraction_rate"] == 0.5
    assert at_5["extraction_rate_low"] == pytest.approx(low)
    assert at_5["extraction_rate_high"] == pytest.approx(high)
    assert at_5["mean_match_length"] == 1.5
    assert at_5["mean_token_accuracy"] == 0.75
    assert at_5["nonmember_extraction_rate"] == pytest.approx(1 / 3)
    assert at_5["token_perplexity"] == 12.5
    assert at_5["word_perplexity"] == 30.0
    assert at_5["bits_per_byte"] == 1.25
    assert at_5["n_nan_loss"] == 1
    for attack in ("loss", "zlib", "min_k"):
        assert at_5[f"mia_{attack}_auc"] == 1.0
        assert at_5[f"mia_{attack}_tpr_at_1fpr"] == 1.0

    assert at_10["n_extracted"] == 4
    assert at_10["extraction_rate"] == 1.0
    assert at_10["extraction_rate_high"] == 1.0
    assert at_10["nonmember_extraction_rate"] == 0.0
    assert at_10["n_nan_loss"] == 0
    for attack in ("loss", "zlib", "min_k"):
        assert at_10[f"mia_{attack}_auc"] == 0.0
        assert at_10[f"mia_{attack}_tpr_at_1fpr"] == 0.0


def test_summary_rows_sorted_per_model(scores_table, members, nonmembers):
    entries = [
        ("tiny", "global_magnitude", 50, scores_table),
        ("tiny", "dense", 0, scores_table),
        ("tiny", "global_magnitude", 10, scores_table),
    ]
    summary = build_summary(entries, {}, SUFFIX_TEXTS, members, nonmembers)

    assert summary.select("strategy", "sparsity", "k").rows() == [
        ("dense", 0, 5), ("dense", 0, 10),
        ("global_magnitude", 10, 5), ("global_magnitude", 10, 10),
        ("global_magnitude", 50, 5), ("global_magnitude", 50, 10),
    ]


def test_summary_missing_perplexity_is_null_and_logged(scores_table, members, nonmembers, caplog):
    with caplog.at_level(logging.WARNING, logger="memprune.summary"):
        summary = build_summary([("tiny", "dense", 0, scores_table)], {}, SUFFIX_TEXTS, members, nonmembers)

    assert summary["token_perplexity"].null_count() == 2
    assert "No perplexity for 1 of 1 scored models" in caplog.text


def test_summary_mismatched_member_ids_name_both_files(tmp_path, scores_table, members, nonmembers):
    scores_path = tmp_path / "scores" / "50.parquet"
    members_path = tmp_path / "members.parquet"
    scores_path.parent.mkdir()
    scores_table.with_columns(
        pl.when(pl.col("sample_id") == 4).then(99).otherwise(pl.col("sample_id")).alias("sample_id")
    ).write_parquet(scores_path)
    members.write_parquet(members_path)

    with pytest.raises(ValueError) as error:
        build_summary([("tiny", "random", 50, scores_path)], {}, SUFFIX_TEXTS, members_path, nonmembers)

    message = str(error.value)
    assert str(scores_path) in message
    assert str(members_path) in message
    assert "1 missing (first: [4])" in message
    assert "1 extra (first: [99])" in message


def test_summary_missing_nonmembers_name_table(scores_table, members, nonmembers):
    partial = scores_table.filter(~((pl.col("sample_id") == 13) & (pl.col("k") == 10)))

    with pytest.raises(ValueError) as error:
        build_summary(
            [("tiny", "dense", 0, partial)],
            {},
            SUFFIX_TEXTS,
            members,
            nonmembers,
            nonmembers_source="nonmembers.parquet",
        )

    message = str(error.value)
    assert "scores of model=tiny, strategy=dense, sparsity=0" in message
    assert "nonmembers.parquet" in message
    assert "k=10" in message
    assert "1 missing (first: [13])" in message


def test_summary_invalid_keys_raise(scores_table, members, nonmembers):
    with pytest.raises(ValueError, match="needs sparsity 0"):
        build_summary([("tiny", "dense", 10, scores_table)], {}, SUFFIX_TEXTS, members, nonmembers)
    with pytest.raises(ValueError, match="integer percent"):
        build_summary([("tiny", "global_magnitude", 0.5, scores_table)], {}, SUFFIX_TEXTS, members, nonmembers)
    with pytest.raises(ValueError, match="has no rows"):
        build_summary([("tiny", "dense", 0, scores_table.head(0))], {}, SUFFIX_TEXTS, members, nonmembers)
    with pytest.raises(ValueError, match="given twice"):
        entries = [("tiny", "dense", 0, scores_table), ("tiny", "dense", 0, scores_table)]
        build_summary(entries, {}, SUFFIX_TEXTS, members, nonmembers)


def test_summary_without_logprobs_has_nan_attacks(scores_table, members, nonmembers, caplog):
    generated = scores_table.with_columns(pl.lit(None, dtype=pl.List(pl.Float32)).alias("suffix_logprobs"))

    with caplog.at_level(logging.WARNING, logger="memprune.summary"):
        summary = build_summary([("tiny", "dense", 0, generated)], {}, SUFFIX_TEXTS, members, nonmembers)

    assert summary["mia_loss_auc"].is_nan().all()
    assert summary["extraction_rate"].to_list() == [0.5, 1.0]
    assert "4 member rows at k=5 have no suffix_logprobs" in caplog.text


def test_duplication_table_groups_known_counts(scores_table, members, caplog):
    with caplog.at_level(logging.WARNING, logger="memprune.summary"):
        table = build_duplication_table([("tiny", "dense", 0, scores_table)], members)

    assert table.columns == list(DUPLICATION_SCHEMA)
    assert table.select("k", "duplicates", "n", "n_extracted").rows() == [
        (5, 1, 2, 1),
        (5, 5, 1, 0),
        (10, 1, 2, 2),
        (10, 5, 1, 1),
    ]
    assert table["extraction_rate"].to_list() == [0.5, 0.0, 1.0, 1.0]
    assert table["extraction_rate_low"][0] == pytest.approx(wilson_interval(1, 2)[0])
    assert table["extraction_rate_high"][1] == pytest.approx(wilson_interval(0, 1)[1])
    assert "1 of 4 members in members table have an unknown duplicates count" in caplog.text


def test_duplication_table_checks_member_ids(scores_table):
    other_members = pl.DataFrame({"sample_id": [1, 5, 6, 7], "duplicates": [1, 1, 1, 1]})

    with pytest.raises(ValueError, match=r"3 missing \(first: \[5, 6, 7\]\), 3 extra \(first: \[2, 3, 4\]\)"):
        build_duplication_table([("tiny", "dense", 0, scores_table)], other_members)
