"""Exact k-th smallest score over many tensors without concatenating them (radix select).

Magnitude pruning at sparsity s keeps all but the k = round(s * n) smallest scores. Over a whole
model the pruned set is too large to concatenate (and ``torch.quantile`` rejects inputs over
2**24 elements), so the cut is found by radix select on the IEEE-754 bit pattern. For
non-negative floats the bit pattern, read as a signed integer, orders exactly like the value.
Each pass histograms one 16-bit digit of every tensor's keys, restricted to keys that share the
digits already fixed, and picks the digit whose cumulative count reaches k. float32 scores take
two passes and float64 scores four, plus one pass for per-tensor counts. Keys are processed in
chunks, so peak extra memory is about one tensor's scores plus a fixed chunk, never the whole set.

Ties at the cut are broken in a fixed order: tensor order first, then flat index inside a tensor.
"""

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from tqdm import tqdm

logger = logging.getLogger(__name__)

DIGIT_BITS = 16
DIGIT_MASK = (1 << DIGIT_BITS) - 1

KEY_DTYPES = {torch.float32: torch.int32, torch.float64: torch.int64}
KEY_BITS = {torch.float32: 32, torch.float64: 64}

#: Bounds on the chunk of keys processed at once, which is an eighth of the tensor. The temporaries
#: of a pass then stay a fraction of the tensor's own scores, and large tensors take few kernel launches.
MIN_CHUNK_ELEMENTS = 1 << 16
MAX_CHUNK_ELEMENTS = 1 << 24

ScoreSource = tuple[str, Callable[[], torch.Tensor]]


@dataclass(frozen=True)
class Cut:
    """The cut that selects the k smallest scores, with each tensor's share of them.

    Attributes:
        threshold: the k-th smallest score, exactly (0.0 when k == 0, which prunes nothing because
            every score is >= 0). Every score below it is pruned.
        tied_pruned: per tensor, how many scores equal to ``threshold`` are pruned, taken in flat
            index order.
        pruned: per tensor, the number of pruned positions (scores below the threshold plus
            ``tied_pruned``).
    """

    threshold: float
    tied_pruned: list[int]
    pruned: list[int]


def score_keys(scores: torch.Tensor, name: str, *, check: bool = False) -> torch.Tensor:
    """View non-negative float scores, flattened in row-major order, as integer keys that order like the values.

    Args:
        scores: float32 or float64 scores.
        name: the tensor's name, for error messages.
        check: also reject NaN and negative scores (costs two reductions).

    Raises:
        ValueError: scores that are not float32/float64, or (with ``check``) NaN or negative scores.
    """
    if scores.dtype not in KEY_DTYPES:
        raise ValueError(f"tensor {name!r}: scores must be float32 or float64, got {scores.dtype}")

    keys = scores.contiguous().view(-1).view(KEY_DTYPES[scores.dtype])
    if check and keys.numel():
        infinity_key = _float_to_key(float("inf"), scores.dtype)
        if keys.min().item() < 0 or keys.max().item() > infinity_key:
            raise ValueError(f"tensor {name!r}: scores contain NaN or negative values; expected scores >= 0")
    return keys


def _key_to_float(key: int, score_dtype: torch.dtype) -> float:
    return torch.tensor(key, dtype=KEY_DTYPES[score_dtype]).view(score_dtype).item()


def _float_to_key(value: float, score_dtype: torch.dtype) -> int:
    return torch.tensor(value, dtype=score_dtype).view(KEY_DTYPES[score_dtype]).item()


def _chunks(keys: torch.Tensor) -> list[torch.Tensor]:
    """Split flat keys into views of about an eighth of the tensor, so temporaries stay small."""
    size = min(max(keys.numel() // 8, MIN_CHUNK_ELEMENTS), MAX_CHUNK_ELEMENTS)
    return [keys[start : start + size] for start in range(0, keys.numel(), size)]


def _digit_histogram(keys: torch.Tensor, shift: int, prefix: int | None) -> torch.Tensor:
    """Count the 16-bit digit at ``shift`` among keys whose higher bits equal ``prefix``."""
    counts = torch.zeros(DIGIT_MASK + 1, dtype=torch.int64, device=keys.device)
    for chunk in _chunks(keys):
        if prefix is not None:
            chunk = chunk[(chunk >> (shift + DIGIT_BITS)) == prefix]
        digits = chunk >> shift
        digits &= DIGIT_MASK
        counts += torch.bincount(digits, minlength=DIGIT_MASK + 1)
    return counts


def _count_below_and_at(keys: torch.Tensor, threshold_key: int) -> tuple[int, int]:
    """Count keys below and equal to the threshold key, one chunk at a time."""
    below = 0
    at_cut = 0
    for chunk in _chunks(keys):
        below += int((chunk < threshold_key).sum().item())
        at_cut += int((chunk == threshold_key).sum().item())
    return below, at_cut


def _histogram_pass(
    sources: Sequence[ScoreSource], score_dtype: torch.dtype, shift: int, prefix: int | None, label: str
) -> torch.Tensor:
    """Sum the digit histograms of all tensors; the first pass (no prefix) also validates the scores."""
    counts = torch.zeros(DIGIT_MASK + 1, dtype=torch.int64)
    for name, make_scores in tqdm(sources, desc=label, leave=False, disable=None):
        scores = make_scores()
        if scores.dtype != score_dtype:
            raise ValueError(f"tensor {name!r}: scores have dtype {scores.dtype}, others have {score_dtype}")
        keys = score_keys(scores, name, check=prefix is None)
        counts += _digit_histogram(keys, shift, prefix).cpu()
    return counts


def find_cut(sources: Sequence[ScoreSource], k: int, *, description: str = "threshold") -> Cut:
    """Find the exact cut that selects the k smallest scores over several tensors.

    Args:
        sources: ``(name, make_scores)`` pairs, in tie-break order. ``make_scores()`` returns the
            tensor's non-negative scores, float32 or float64 with the same dtype for every source.
            It is called once per pass, so it should compute the scores on the fly, not keep them.
        k: how many scores to select, 0 <= k <= total number of scores.
        description: a label for the progress bars and the log.

    Raises:
        ValueError: no sources, k out of range, mixed score dtypes, or NaN/negative scores.
    """
    if not sources:
        raise ValueError(f"{description}: no tensors to select from")
    if k < 0:
        raise ValueError(f"{description}: k={k} must be >= 0")

    score_dtype = sources[0][1]().dtype
    if score_dtype not in KEY_DTYPES:
        raise ValueError(f"tensor {sources[0][0]!r}: scores must be float32 or float64, got {score_dtype}")
    key_bits = KEY_BITS[score_dtype]

    # Radix select: fix the key one 16-bit digit at a time, from the most significant.
    prefix = None
    rank = k
    for shift in range(key_bits - DIGIT_BITS, -1, -DIGIT_BITS):
        counts = _histogram_pass(sources, score_dtype, shift, prefix, f"{description} (bits {shift}+)")
        cumulative = counts.cumsum(0)

        if prefix is None:
            total = int(cumulative[-1].item())
            if k > total:
                raise ValueError(f"{description}: k={k} exceeds the number of scores ({total})")
            if k == 0:
                return Cut(threshold=0.0, tied_pruned=[0] * len(sources), pruned=[0] * len(sources))

        digit = int(torch.searchsorted(cumulative, torch.tensor([rank])).item())
        if digit > 0:
            rank -= int(cumulative[digit - 1].item())
        prefix = digit if prefix is None else (prefix << DIGIT_BITS) | digit

    threshold_key = prefix
    threshold = _key_to_float(threshold_key, score_dtype)

    # Count per tensor below and at the cut. Ties go to earlier tensors first.
    below = []
    at_cut = []
    for name, make_scores in tqdm(sources, desc=f"{description} (counts)", leave=False, disable=None):
        count_below, count_at = _count_below_and_at(score_keys(make_scores(), name), threshold_key)
        below.append(count_below)
        at_cut.append(count_at)

    ties_left = k - sum(below)
    if not 0 < ties_left <= sum(at_cut):
        raise RuntimeError(
            f"{description}: radix select is inconsistent: {sum(below)} scores below the cut, "
            f"{sum(at_cut)} at it, k={k}"
        )
    tied_pruned = []
    for count in at_cut:
        take = min(count, ties_left)
        tied_pruned.append(take)
        ties_left -= take

    pruned = [count_below + ties for count_below, ties in zip(below, tied_pruned)]
    logger.debug("%s: k=%d of %d, threshold=%r, %d tied at the cut", description, k, total, threshold, sum(at_cut))
    return Cut(threshold=threshold, tied_pruned=tied_pruned, pruned=pruned)


def select_smallest(scores: torch.Tensor, threshold: float, tied_pruned: int) -> torch.Tensor:
    """Rebuild the boolean mask of a cut for one tensor's scores.

    Selects every score below ``threshold`` plus the first ``tied_pruned`` scores equal to it in
    flat index order. The comparison is exact: ``threshold`` must be representable in the scores'
    dtype (callers upcast when it is not).

    Raises:
        ValueError: fewer scores equal ``threshold`` than ``tied_pruned``.
    """
    if _key_to_float(_float_to_key(threshold, scores.dtype), scores.dtype) != threshold:
        raise ValueError(f"threshold {threshold!r} is not exactly representable as {scores.dtype}")

    flat_scores = scores.reshape(-1)
    flat_mask = flat_scores < threshold
    if tied_pruned > 0:
        tied_positions = (flat_scores == threshold).nonzero().squeeze(1)
        if tied_positions.numel() < tied_pruned:
            raise ValueError(
                f"only {tied_positions.numel()} scores equal the threshold {threshold!r}, "
                f"but tied_pruned={tied_pruned}"
            )
        flat_mask[tied_positions[:tied_pruned]] = True
    return flat_mask.view(scores.shape)
