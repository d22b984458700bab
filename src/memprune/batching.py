"""Run a function over batches of items, halving the batch size whenever the device runs out of memory.

The right batch size for a model depends on the GPU, the model size and the sequence length, so
stages start from a configured batch size and let `run_with_oom_backoff` find one that fits. The
failed batch is retried at the smaller size, so no item is skipped or processed twice. The
function must return one result per item that does not depend on the batch size, so the results
are the same whatever size the back-off settles on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, TypeVar

import torch
from tqdm import tqdm

logger = logging.getLogger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")

#: Exceptions that mean "this batch does not fit in device memory". In the pinned torch 2.13,
#: `torch.cuda.OutOfMemoryError` is an alias of `torch.OutOfMemoryError`, so the tuple has one entry.
OUT_OF_MEMORY_ERRORS: tuple[type[BaseException], ...] = tuple(
    dict.fromkeys((torch.OutOfMemoryError, torch.cuda.OutOfMemoryError))
)


class BackoffResult(NamedTuple):
    """Output of `run_with_oom_backoff`.

    Attributes:
        results: One result per item, in item order.
        batch_size: The batch size in use at the end, after any halving.
        out_of_memory_count: How many batches ran out of memory and were retried.
    """

    results: list[Any]
    batch_size: int
    out_of_memory_count: int


def _free_cached_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def run_with_oom_backoff(
    fn: Callable[[Sequence[Item]], Sequence[Result]],
    items: Sequence[Item],
    batch_size: int,
    min_batch_size: int = 1,
    description: str = "batches",
) -> BackoffResult:
    """Apply `fn` to consecutive batches of `items`, halving the batch size on out-of-memory errors.

    When `fn` raises `torch.OutOfMemoryError`, the batch size is halved (not below
    `min_batch_size`), cached device memory is freed, and the same batch is retried at the new
    size. Later batches keep the smaller size. An out-of-memory error at `min_batch_size` is
    re-raised.

    Args:
        fn: Takes a slice of `items` and returns one result per item, in the same order.
        items: Any sequence that supports `len()` and slicing (list, tuple, range, a DataFrame).
        batch_size: Items per batch to start with.
        min_batch_size: Smallest batch size to try before giving up.
        description: Label of the progress bar and log lines.

    Returns:
        The results of all items in item order, the final batch size and the number of retries.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if isinstance(min_batch_size, bool) or not isinstance(min_batch_size, int) or min_batch_size < 1:
        raise ValueError(f"min_batch_size must be a positive integer, got {min_batch_size!r}")
    if min_batch_size > batch_size:
        raise ValueError(f"min_batch_size ({min_batch_size}) must not exceed batch_size ({batch_size})")

    item_count = len(items)
    results: list[Any] = []
    current_size = batch_size
    out_of_memory_count = 0
    start = 0

    with tqdm(total=item_count, desc=description, unit="item") as progress:
        while start < item_count:
            batch = items[start : start + current_size]
            batch_length = len(batch)

            out_of_memory = False
            try:
                batch_results = fn(batch)
            except OUT_OF_MEMORY_ERRORS as error:
                if current_size <= min_batch_size:
                    logger.error(
                        "%s: out of memory at the minimum batch size %d (items %d to %d): %s",
                        description,
                        current_size,
                        start,
                        start + batch_length - 1,
                        error,
                    )
                    raise
                out_of_memory = True
                message = str(error).splitlines()[0] if str(error) else type(error).__name__

            # Retry outside the except block: the traceback there still references the failed
            # batch's tensors, and they must be freed before the smaller batch runs.
            if out_of_memory:
                smaller_size = max(min_batch_size, current_size // 2)
                out_of_memory_count += 1
                logger.warning(
                    "%s: out of memory at batch size %d (items %d to %d: %s); retrying with batch size %d",
                    description,
                    current_size,
                    start,
                    start + batch_length - 1,
                    message,
                    smaller_size,
                )
                current_size = smaller_size
                _free_cached_memory()
                continue

            if len(batch_results) != batch_length:
                raise ValueError(
                    f"{description}: fn returned {len(batch_results)} results for a batch of {batch_length} "
                    f"items (items {start} to {start + batch_length - 1}); it must return one result per item"
                )
            results.extend(batch_results)
            start += batch_length
            progress.update(batch_length)

    if out_of_memory_count:
        logger.info(
            "%s: settled on batch size %d (started at %d) after %d out-of-memory retries; %d items",
            description,
            current_size,
            batch_size,
            out_of_memory_count,
            item_count,
        )
    else:
        logger.info("%s: batch size %d fit; %d items", description, current_size, item_count)
    return BackoffResult(results=results, batch_size=current_size, out_of_memory_count=out_of_memory_count)


def call_with_oom_backoff(call: Callable[[int], Result], batch_size: int, description: str) -> Result:
    """Run `call(batch_size)`, halving the batch size and starting over after an out-of-memory error.

    For calls that batch internally and return one combined result, such as a whole scoring pass.
    The result must not depend on the batch size, so a retry at a smaller size gives the same numbers.
    """
    while True:
        try:
            result = call(batch_size)
        except OUT_OF_MEMORY_ERRORS:
            if batch_size == 1:
                raise
            batch_size //= 2
            _free_cached_memory()
            logger.warning("%s: out of memory, retrying with batch size %d", description, batch_size)
            continue
        logger.info("%s: batch size %d", description, batch_size)
        return result
