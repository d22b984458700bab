"""Membership inference scores from per-token suffix log-probabilities.

Each attack turns the log-probabilities that the model assigns to the S true suffix tokens of a sample
(the `suffix_logprobs` column of a scores table) into one score, where a higher score means "more likely
a member" (a training sample):

- LOSS (Yeom et al. 2018): score = -mean NLL = mean log p over the suffix tokens.
- zlib (Carlini et al. 2021): score = -(mean NLL) / zlib_bytes, where zlib_bytes is the length in bytes
  of `zlib.compress(suffix_text.encode("utf-8"), 9)`. Carlini et al. rank samples by the ratio of
  log-perplexity (mean NLL) to zlib entropy, where a low ratio suggests memorization, so its negation
  is used here to keep "higher = member".
- Min-K% (Shi et al. 2024), k = 20%: score = mean of the ceil(0.2 * S) lowest token log-probs.

All log-probabilities are in nats. A sample whose log-probs contain NaN (a diverged model) gets a NaN
score; `evaluate_attack` counts and excludes those.
"""

import logging
import math
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from memprune.stats import drop_nan_scores, roc_auc, threshold_at_fpr

logger = logging.getLogger(__name__)

ZLIB_LEVEL = 9
MIN_K_FRACTION = 0.2


@dataclass(frozen=True)
class AttackResult:
    """ROC metrics of one attack on one member and one non-member sample of scores."""

    auc: float
    tpr_at_fpr: float
    fpr: float
    threshold: float
    n_member: int
    n_nonmember: int
    n_nan_member: int
    n_nan_nonmember: int


def logprob_matrix(suffix_logprobs: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    """Stack per-sample suffix log-probs into an (N, S) float64 array.

    Args:
        suffix_logprobs: one sequence of S log-probs per sample, for example a scores table's
            `suffix_logprobs` column as a list of lists.

    Raises:
        ValueError: when the samples do not all have the same suffix length S >= 1, naming the first
            sample whose length differs.
    """
    if isinstance(suffix_logprobs, np.ndarray) and suffix_logprobs.ndim == 2:
        if suffix_logprobs.shape[1] == 0:
            raise ValueError("suffix_logprobs has suffix length 0; expected at least one token per sample")
        return suffix_logprobs.astype(np.float64, copy=False)

    rows = list(suffix_logprobs)
    if not rows:
        return np.zeros((0, 0), dtype=np.float64)

    suffix_length = len(rows[0])
    for index, row in enumerate(rows):
        if row is None:
            raise ValueError(f"suffix_logprobs of sample {index} is missing (null)")
        if len(row) != suffix_length:
            raise ValueError(
                f"suffix_logprobs of sample {index} has {len(row)} tokens, but sample 0 has {suffix_length}; "
                "all samples of one table need the same suffix length"
            )
    if suffix_length == 0:
        raise ValueError("suffix_logprobs has suffix length 0; expected at least one token per sample")
    return np.asarray(rows, dtype=np.float64)


def loss_scores(suffix_logprobs) -> np.ndarray:
    """Compute LOSS attack scores: the mean suffix log-prob, i.e. minus the mean NLL (nats)."""
    logprobs = logprob_matrix(suffix_logprobs)
    if logprobs.shape[0] == 0:
        return np.zeros(0)
    return logprobs.mean(axis=1)


def zlib_bytes(text: str, level: int = ZLIB_LEVEL) -> int:
    """Return the length in bytes of the zlib-compressed UTF-8 encoding of `text` (at least 8 bytes)."""
    return len(zlib.compress(text.encode("utf-8"), level))


def zlib_scores(suffix_logprobs, suffix_texts: Sequence[str], level: int = ZLIB_LEVEL) -> np.ndarray:
    """Compute zlib attack scores: -(mean NLL) / zlib-compressed length of the suffix text in bytes.

    Args:
        suffix_logprobs: (N, S) suffix log-probs.
        suffix_texts: the decoded suffix text of each sample, in the same order.
        level: zlib compression level.
    """
    logprobs = logprob_matrix(suffix_logprobs)
    if len(suffix_texts) != logprobs.shape[0]:
        raise ValueError(
            f"got {len(suffix_texts)} suffix texts for {logprobs.shape[0]} samples; expected one text per sample"
        )
    if logprobs.shape[0] == 0:
        return np.zeros(0)

    compressed_lengths = np.array([zlib_bytes(text, level) for text in suffix_texts], dtype=np.float64)
    return logprobs.mean(axis=1) / compressed_lengths


def min_k_count(suffix_length: int, fraction: float = MIN_K_FRACTION) -> int:
    """Return ceil(fraction * suffix_length), the number of lowest log-probs that Min-K% averages (>= 1)."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"Min-K% fraction must be in (0, 1], got {fraction!r}")

    # Rounding first keeps float products such as 0.55 * 100 = 55.00000000000001 from rounding up to 56.
    return max(1, math.ceil(round(fraction * suffix_length, 9)))


def min_k_scores(suffix_logprobs, fraction: float = MIN_K_FRACTION) -> np.ndarray:
    """Compute Min-K% attack scores: the mean of the ceil(fraction * S) lowest suffix log-probs.

    A NaN log-prob makes the sample's score NaN (np.sort puts NaN last, so it is handled explicitly).
    """
    logprobs = logprob_matrix(suffix_logprobs)
    if logprobs.shape[0] == 0:
        return np.zeros(0)

    count = min_k_count(logprobs.shape[1], fraction)
    lowest = np.sort(logprobs, axis=1)[:, :count]
    scores = lowest.mean(axis=1)
    scores[np.isnan(logprobs).any(axis=1)] = np.nan
    return scores


def evaluate_attack(member_scores, nonmember_scores, fpr: float = 0.01) -> AttackResult:
    """Compute ROC AUC and TPR at `fpr` for one attack, excluding and counting NaN scores.

    Args:
        member_scores: attack scores of members (higher = member).
        nonmember_scores: attack scores of non-members.
        fpr: the false-positive rate bound for the TPR, with the threshold convention of
            `memprune.stats.tpr_at_fpr`.
    """
    members, nonmembers, n_nan_member, n_nan_nonmember = drop_nan_scores(member_scores, nonmember_scores)

    if members.size == 0 or nonmembers.size == 0:
        logger.warning(
            "Attack metrics are undefined with %d member and %d non-member scores left after NaN removal",
            members.size, nonmembers.size,
        )
        auc = math.nan
        tpr = math.nan
        threshold = math.nan
    else:
        auc = roc_auc(members, nonmembers)
        threshold = threshold_at_fpr(nonmembers, fpr)
        tpr = float(np.mean(members > threshold))

    return AttackResult(
        auc=auc,
        tpr_at_fpr=tpr,
        fpr=fpr,
        threshold=threshold,
        n_member=int(members.size),
        n_nonmember=int(nonmembers.size),
        n_nan_member=n_nan_member,
        n_nan_nonmember=n_nan_nonmember,
    )


def decode_suffix_texts(
    sample_ids: Sequence[int],
    input_ids: Sequence[Sequence[int]],
    suffix_length: int,
    decode: Callable[[list[int]], str],
) -> dict[int, str]:
    """Decode the last `suffix_length` tokens of each sample, the text that the zlib attack compresses.

    Args:
        sample_ids: one id per sample.
        input_ids: the token ids of each sample (the `input_ids` column of members/nonmembers.parquet).
        suffix_length: S, the number of suffix tokens at the end of each sample.
        decode: maps a list of token ids to text, for example `tokenizer.decode`.

    Returns:
        A mapping from sample id to its suffix text.
    """
    if len(sample_ids) != len(input_ids):
        raise ValueError(f"got {len(sample_ids)} sample ids for {len(input_ids)} token sequences")
    if suffix_length < 1:
        raise ValueError(f"suffix_length must be >= 1, got {suffix_length!r}")

    texts: dict[int, str] = {}
    for sample_id, tokens in zip(sample_ids, input_ids):
        tokens = list(tokens)
        if len(tokens) < suffix_length:
            raise ValueError(
                f"sample {sample_id} has {len(tokens)} tokens, fewer than suffix_length={suffix_length}"
            )
        texts[int(sample_id)] = decode([int(token) for token in tokens[-suffix_length:]])
    return texts


def texts_for_samples(sample_ids: Sequence[int], suffix_texts: Mapping[int, str], split: str) -> list[str]:
    """Look up the suffix text of each sample id, raising a ValueError that names missing ids."""
    missing = [int(sample_id) for sample_id in sample_ids if int(sample_id) not in suffix_texts]
    if missing:
        raise ValueError(
            f"suffix_texts for split {split!r} has no text for {len(missing)} sample ids "
            f"(first: {missing[:5]}); pass the decoded suffix of every scored sample"
        )
    return [suffix_texts[int(sample_id)] for sample_id in sample_ids]
