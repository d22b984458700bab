"""Statistics for the summary tables: binomial confidence intervals and two-sample ROC metrics.

The extraction rate is a binomial proportion (extracted members out of all members), often near 0 or 1,
where the normal-approximation interval collapses or leaves [0, 1]. The Wilson score interval (Wilson
1927) stays inside [0, 1] and keeps close to its nominal coverage there, so the summary tables use it.

Membership inference is scored by ROC AUC and by the true-positive rate at a fixed false-positive rate,
computed here from two samples of scores (members and non-members, higher score = more likely a member).
"""

import logging
import math
from statistics import NormalDist

import numpy as np

logger = logging.getLogger(__name__)


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Compute the Wilson score interval for a binomial proportion.

    Args:
        successes: number of successes, 0 <= successes <= n.
        n: number of trials. With n == 0 the proportion is undefined and (nan, nan) is returned.
        confidence: two-sided confidence level, strictly between 0 and 1.

    Returns:
        (low, high), both in [0, 1].

    Raises:
        ValueError: on a negative n, successes outside [0, n], or a confidence outside (0, 1).
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be strictly between 0 and 1, got {confidence!r}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n!r}")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be between 0 and n={n}, got {successes!r}")

    if n == 0:
        return (math.nan, math.nan)

    z = NormalDist().inv_cdf(0.5 + confidence / 2.0)
    proportion = successes / n
    z_squared_over_n = z * z / n

    center = (proportion + z_squared_over_n / 2.0) / (1.0 + z_squared_over_n)
    half_width = (
        z * math.sqrt(proportion * (1.0 - proportion) / n + z_squared_over_n / (4.0 * n))
        / (1.0 + z_squared_over_n)
    )

    # At 0 or n successes the bound on that side is exactly 0 or 1, but rounding leaves it a few ulps off.
    low = 0.0 if successes == 0 else max(0.0, center - half_width)
    high = 1.0 if successes == n else min(1.0, center + half_width)
    return (low, high)


def _scores_without_nan(scores, name: str) -> tuple[np.ndarray, int]:
    """Convert scores to a 1-D float64 array and remove NaN values, returning the array and the NaN count."""
    array = np.asarray(scores, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a 1-D sequence of scores, got an array of shape {array.shape}")

    nan_mask = np.isnan(array)
    n_nan = int(nan_mask.sum())
    return array[~nan_mask], n_nan


def drop_nan_scores(member_scores, nonmember_scores) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Remove NaN scores from both samples and log a warning with the counts.

    Args:
        member_scores: scores of member samples (1-D).
        nonmember_scores: scores of non-member samples (1-D).

    Returns:
        (member_scores, nonmember_scores, n_nan_member, n_nan_nonmember): float64 arrays without NaN,
        and how many NaN values each sample contained. Infinite scores are kept, since they still rank.
    """
    members, n_nan_member = _scores_without_nan(member_scores, "member_scores")
    nonmembers, n_nan_nonmember = _scores_without_nan(nonmember_scores, "nonmember_scores")

    if n_nan_member or n_nan_nonmember:
        logger.warning(
            "Excluded NaN scores: %d of %d member scores and %d of %d non-member scores",
            n_nan_member, n_nan_member + members.size, n_nan_nonmember, n_nan_nonmember + nonmembers.size,
        )
    return members, nonmembers, n_nan_member, n_nan_nonmember


def roc_auc(member_scores, nonmember_scores) -> float:
    """Compute the exact ROC AUC of member vs non-member scores (Mann-Whitney U with mid-ranks).

    The AUC is the probability that a random member scores higher than a random non-member, with ties
    counted as one half. It is computed exactly from the ranks of the pooled sample: ties get the mean of
    the ranks they span (mid-ranks), so AUC = (R_member - n_member (n_member + 1) / 2) / (n_member n_nonmember),
    where R_member is the sum of the members' ranks. No threshold grid or interpolation is involved.

    Args:
        member_scores: scores of member samples; higher means more likely a member.
        nonmember_scores: scores of non-member samples.

    Returns:
        The AUC in [0, 1]: 1 when every member outscores every non-member, 0 when the order is reversed,
        0.5 when all scores are equal. NaN scores are excluded with a logged warning (see
        `drop_nan_scores`), and the result is NaN when either sample is empty after that.
    """
    members, nonmembers, _, _ = drop_nan_scores(member_scores, nonmember_scores)
    n_member = members.size
    n_nonmember = nonmembers.size
    if n_member == 0 or n_nonmember == 0:
        logger.warning(
            "ROC AUC is undefined with %d member and %d non-member scores; returning NaN",
            n_member, n_nonmember,
        )
        return math.nan

    pooled = np.concatenate([members, nonmembers])
    _, inverse, counts = np.unique(pooled, return_inverse=True, return_counts=True)

    # Twice the mid-rank is an integer: a tie group that starts after `before` smaller values and contains
    # `count` values spans ranks before + 1 .. before + count, so 2 * mid-rank = 2 * before + count + 1.
    before = np.concatenate([[0], np.cumsum(counts)[:-1]])
    doubled_mid_ranks = 2 * before + counts + 1
    doubled_member_rank_sum = int(doubled_mid_ranks[inverse[:n_member]].sum())

    doubled_u = doubled_member_rank_sum - n_member * (n_member + 1)
    return doubled_u / (2 * n_member * n_nonmember)


def tpr_at_fpr(member_scores, nonmember_scores, fpr: float = 0.01) -> float:
    """Compute the true-positive rate at a false-positive rate of at most `fpr`.

    Convention: a sample is predicted a member when its score is strictly greater than a threshold. The
    threshold is the lowest non-member score (or -inf) that leaves at most floor(fpr * n_nonmember)
    non-members strictly above it, so the achieved false-positive rate never exceeds `fpr`, and ties at
    the threshold count as negatives. See `threshold_at_fpr` for the threshold itself.

    Args:
        member_scores: scores of member samples; higher means more likely a member.
        nonmember_scores: scores of non-member samples, used only to choose the threshold.
        fpr: the false-positive rate bound, in [0, 1].

    Returns:
        The fraction of members scoring above the threshold. NaN scores are excluded with a logged
        warning, and the result is NaN when either sample is empty after that.
    """
    members, nonmembers, _, _ = drop_nan_scores(member_scores, nonmember_scores)
    if members.size == 0 or nonmembers.size == 0:
        logger.warning(
            "TPR at FPR is undefined with %d member and %d non-member scores; returning NaN",
            members.size, nonmembers.size,
        )
        return math.nan

    threshold = threshold_at_fpr(nonmembers, fpr)
    return float(np.mean(members > threshold))


def threshold_at_fpr(nonmember_scores, fpr: float) -> float:
    """Choose the decision threshold for `tpr_at_fpr` from non-member scores.

    Args:
        nonmember_scores: non-member scores without NaN (1-D, not empty).
        fpr: the false-positive rate bound, in [0, 1].

    Returns:
        The (a + 1)-th largest non-member score, where a = floor(fpr * n_nonmember) is the number of false
        positives allowed, or -inf when every non-member may be a false positive.
    """
    if not 0.0 <= fpr <= 1.0:
        raise ValueError(f"fpr must be between 0 and 1, got {fpr!r}")

    descending = np.sort(np.asarray(nonmember_scores, dtype=np.float64))[::-1]
    if descending.size == 0:
        raise ValueError("nonmember_scores is empty, so no threshold can be chosen")

    # The small tolerance keeps products such as 0.29 * 100 = 28.999999999999996 from losing a count.
    allowed_false_positives = math.floor(fpr * descending.size + 1e-9)
    if allowed_false_positives >= descending.size:
        return -math.inf
    return float(descending[allowed_false_positives])
