"""Tests of membership inference scores, ROC metrics and the Wilson interval on hand-computed cases."""

import logging
import math
import zlib

import numpy as np
import pytest

from memprune.mia import (
    decode_suffix_texts,
    evaluate_attack,
    loss_scores,
    min_k_count,
    min_k_scores,
    texts_for_samples,
    zlib_bytes,
    zlib_scores,
)
from memprune.stats import roc_auc, threshold_at_fpr, tpr_at_fpr, wilson_interval


def pairwise_auc(members, nonmembers) -> float:
    """The AUC by its definition: P(member > non-member) + P(tie) / 2 over all pairs."""
    wins = sum((m > n) + 0.5 * (m == n) for m in members for n in nonmembers)
    return wins / (len(members) * len(nonmembers))


def test_roc_auc_separated_reversed_and_equal():
    assert roc_auc([3.0, 4.0, 5.0], [1.0, 2.0]) == 1.0
    assert roc_auc([1.0, 2.0], [3.0, 4.0, 5.0]) == 0.0
    assert roc_auc([7.0, 7.0, 7.0], [7.0, 7.0]) == 0.5


def test_roc_auc_hand_case_with_ties():
    # Pairs won by members: 1 beats 0 (1), each 2 ties 2 (0.5) and beats 0 (1), 3 beats both (2): 6 of 8.
    assert roc_auc([1.0, 2.0, 2.0, 3.0], [2.0, 0.0]) == 0.75


def test_roc_auc_matches_pairwise_definition():
    rng = np.random.default_rng(0)
    members = rng.integers(0, 6, size=37).astype(float)
    nonmembers = rng.integers(0, 5, size=23).astype(float)

    assert roc_auc(members, nonmembers) == pytest.approx(pairwise_auc(members, nonmembers), abs=1e-12)


def test_roc_auc_excludes_nan_with_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="memprune.stats"):
        auc = roc_auc([3.0, math.nan, 4.0], [1.0, math.nan, math.nan, 2.0])

    assert auc == 1.0
    assert "1 of 3 member scores and 2 of 4 non-member scores" in caplog.text


def test_roc_auc_empty_sample_is_nan():
    assert math.isnan(roc_auc([math.nan], [1.0]))
    assert math.isnan(roc_auc([1.0], []))


def test_tpr_at_fpr_hand_case():
    nonmembers = np.arange(100, dtype=float)  # 0, 1, ..., 99
    members = [98.5, 99.0, 99.5, 50.0]

    # At 1% FPR one non-member may score above the threshold, so the threshold is 98.
    assert threshold_at_fpr(nonmembers, 0.01) == 98.0
    assert tpr_at_fpr(members, nonmembers, fpr=0.01) == 0.75
    # At 0% FPR the threshold is the largest non-member score, 99.
    assert tpr_at_fpr(members, nonmembers, fpr=0.0) == 0.25
    # At 100% FPR every member above -inf is a true positive.
    assert tpr_at_fpr(members, nonmembers, fpr=1.0) == 1.0


def test_tpr_at_fpr_ties_at_threshold_are_negatives():
    nonmembers = [5.0, 5.0, 1.0, 0.0]
    members = [5.0, 6.0]

    # floor(0.25 * 4) = 1 false positive allowed; the second largest non-member is 5, so the threshold is 5.
    assert threshold_at_fpr(nonmembers, 0.25) == 5.0
    assert tpr_at_fpr(members, nonmembers, fpr=0.25) == 0.5


def test_tpr_at_fpr_rounding_of_allowed_count():
    # 0.29 * 100 = 28.999999999999996 in floating point, but 29 false positives are allowed.
    nonmembers = np.arange(100, dtype=float)
    assert threshold_at_fpr(nonmembers, 0.29) == 70.0


def test_wilson_known_values():
    low, high = wilson_interval(0, 10)
    assert low == 0.0
    assert high == pytest.approx(0.2775, abs=1e-4)

    low, high = wilson_interval(5, 10)
    assert low == pytest.approx(0.2366, abs=1e-4)
    assert high == pytest.approx(0.7634, abs=1e-4)

    low, high = wilson_interval(10, 10)
    assert low == pytest.approx(0.7225, abs=1e-4)
    assert high == 1.0


def test_wilson_empty_and_invalid():
    low, high = wilson_interval(0, 0)
    assert math.isnan(low)
    assert math.isnan(high)
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(11, 10)
    with pytest.raises(ValueError, match="confidence"):
        wilson_interval(1, 10, confidence=1.0)


def test_wilson_wider_at_higher_confidence():
    low_95, high_95 = wilson_interval(30, 100, 0.95)
    low_99, high_99 = wilson_interval(30, 100, 0.99)

    assert low_99 < low_95 < 0.3 < high_95 < high_99


LOGPROBS = np.array(
    [
        [-0.1, -0.2, -0.3, -0.4, -5.0],
        [-1.0, -1.0, -1.0, -1.0, -1.0],
    ]
)


def test_loss_scores_are_mean_logprob():
    np.testing.assert_allclose(loss_scores(LOGPROBS), [-1.2, -1.0])


def test_min_k_scores_average_lowest_fraction():
    # ceil(0.2 * 5) = 1 lowest log-prob; ceil(0.4 * 5) = 2.
    np.testing.assert_allclose(min_k_scores(LOGPROBS), [-5.0, -1.0])
    np.testing.assert_allclose(min_k_scores(LOGPROBS, fraction=0.4), [-2.7, -1.0])
    assert min_k_count(50) == 10
    assert min_k_count(51) == 11
    assert min_k_count(100, fraction=0.55) == 55


def test_min_k_scores_nan_propagates():
    logprobs = np.array([[-0.1, math.nan, -0.3, -0.4, -0.5]])
    assert math.isnan(min_k_scores(logprobs)[0])


def test_zlib_scores_divide_by_compressed_length():
    texts = ["aaaaaaaaaa", "The quick brown fox jumps over the lazy dog"]
    lengths = [len(zlib.compress(text.encode("utf-8"), 9)) for text in texts]

    np.testing.assert_allclose(zlib_scores(LOGPROBS, texts), [-1.2 / lengths[0], -1.0 / lengths[1]])
    assert zlib_bytes(texts[0]) == lengths[0]
    with pytest.raises(ValueError, match="1 suffix texts for 2 samples"):
        zlib_scores(LOGPROBS, texts[:1])


def test_ragged_logprobs_raise():
    with pytest.raises(ValueError, match="sample 1 has 2 tokens"):
        loss_scores([[-1.0, -2.0, -3.0], [-1.0, -2.0]])


def test_evaluate_attack_counts_nan():
    result = evaluate_attack([3.0, 4.0, math.nan], [1.0, 2.0, math.nan, math.nan])

    assert result.auc == 1.0
    assert result.tpr_at_fpr == 1.0
    assert result.threshold == 2.0
    assert result.n_member == 2
    assert result.n_nonmember == 2
    assert result.n_nan_member == 1
    assert result.n_nan_nonmember == 2


def test_decode_suffix_texts_uses_last_tokens():
    texts = decode_suffix_texts([7, 8], [[1, 2, 3, 4], [5, 6, 7, 8]], 2, lambda ids: "-".join(map(str, ids)))

    assert texts == {7: "3-4", 8: "7-8"}
    assert texts_for_samples([8, 7], texts, "member") == ["7-8", "3-4"]
    with pytest.raises(ValueError, match="no text for 1 sample ids"):
        texts_for_samples([9], texts, "member")
