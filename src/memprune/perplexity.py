"""Held-out perplexity with rolling, non-overlapping prediction windows, as lm-evaluation-harness computes it.

Each document's tokens are scored exactly once. The model reads `[prefix_token_id] + tokens`, where the
prefix token is the end-of-text token for models trained without BOS (like Pythia), so the first document
token is predicted from it. The sequence is cut into windows of at most `window` input tokens, and each
window predicts the next token at every input position. The predicted spans are disjoint and together
cover every document token.

By default the last window of a document longer than `window` is filled back with earlier tokens, up to
`window` input tokens, and scores only its new tokens. lm-evaluation-harness does the same in
`loglikelihood_rolling` (`get_rolling_token_windows` with `context_len=1`, then `make_disjoint_window`), so
the numbers are comparable with its `word_perplexity`, `byte_perplexity` and `bits_per_byte`. With
`fill_last_window=False`, the windows are also disjoint in their inputs, and the last one is simply shorter.

Metrics, from the summed NLL over all document tokens (nats):
- token_perplexity = exp(nll_sum / n_tokens)
- word_perplexity = exp(nll_sum / n_words), with n_words = sum of len(re.split(r"\\s+", text)) over documents
- bits_per_byte = nll_sum / (n_bytes * ln 2), with n_bytes = sum of len(text.encode("utf-8"))
"""

import logging
import math
import re
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from tqdm import tqdm

from memprune.scoring import suffix_logits

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Window:
    """One forward pass over seq[start:end] of a document, whose last `n_scored` positions are scored.

    Input position p predicts seq[p + 1], so the scored targets are seq[end - n_scored + 1 : end + 1].
    """

    document: int
    start: int
    end: int
    n_scored: int


def plan_windows(n_tokens: int, window: int, document: int = 0, fill_last_window: bool = True) -> list[Window]:
    """Cut `[prefix] + tokens` of one document into windows whose predicted tokens are disjoint.

    Positions refer to seq = [prefix_token_id] + tokens, so input position p predicts seq[p + 1], which is
    document token p. A document of n tokens needs inputs seq[0:n].

    Args:
        n_tokens: number of document tokens (>= 1).
        window: maximum input tokens per window (>= 1).
        document: index of the document, copied into each window.
        fill_last_window: when the last window of a long document is partial, extend its input backwards
            to `window` tokens of context (lm-evaluation-harness behaviour) instead of leaving it short.

    Returns:
        Windows in document order. Their scored positions partition 0 .. n_tokens - 1.
    """
    if n_tokens < 1:
        raise ValueError(f"document {document} has {n_tokens} tokens; expected at least 1")
    if window < 1:
        raise ValueError(f"window must be >= 1 token, got {window!r}")

    windows = []
    for scored_start in range(0, n_tokens, window):
        scored_end = min(scored_start + window, n_tokens)
        n_scored = scored_end - scored_start
        input_start = scored_start
        if fill_last_window:
            input_start = max(0, scored_end - window)
        windows.append(Window(document=document, start=input_start, end=scored_end, n_scored=n_scored))
    return windows


def count_words(text: str) -> int:
    """Count words as lm-evaluation-harness does for word perplexity: len(re.split(r"\\s+", text))."""
    return len(re.split(r"\s+", text))


def count_bytes(text: str) -> int:
    """Count the UTF-8 bytes of `text`, the denominator of bits per byte."""
    return len(text.encode("utf-8"))


def select_documents(token_documents: Sequence[Sequence[int]], max_tokens: int) -> list[int]:
    """Pick whole documents, in the given order, until their tokens reach `max_tokens`.

    Empty documents are skipped (they have nothing to score) and their count is logged. The document
    that reaches the budget is included whole, so the total can exceed `max_tokens` by less than one
    document.

    Args:
        token_documents: token ids per document.
        max_tokens: token budget (>= 1).

    Returns:
        Indices of the selected documents.
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens!r}")

    selected = []
    total = 0
    n_empty = 0
    for index, tokens in enumerate(token_documents):
        if total >= max_tokens:
            break
        if len(tokens) == 0:
            n_empty += 1
            continue
        selected.append(index)
        total += len(tokens)

    if n_empty:
        logger.warning("Skipped %d empty documents while selecting perplexity documents", n_empty)
    logger.info("Selected %d documents with %d tokens (budget %d tokens)", len(selected), total, max_tokens)
    return selected


def _window_nll(
    model: torch.nn.Module,
    sequences: list[list[int]],
    windows: list[Window],
    device: torch.device,
) -> torch.Tensor:
    """Return the summed NLL (nats, float64) of each window in one batch of equal-length windows."""
    inputs = torch.tensor(
        [sequences[item.document][item.start : item.end] for item in windows],
        dtype=torch.long,
        device=device,
    )
    targets = torch.tensor(
        [sequences[item.document][item.start + 1 : item.end + 1] for item in windows],
        dtype=torch.long,
        device=device,
    )

    # Logits are needed only for the scored tail of each window. The longest tail in the batch sets how many.
    n_kept = max(item.n_scored for item in windows)
    logits = suffix_logits(model, inputs, n_kept).float()
    kept_targets = targets[:, -n_kept:]

    token_logprobs = logits.gather(-1, kept_targets.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)
    positions = torch.arange(n_kept, device=device)
    n_scored = torch.tensor([item.n_scored for item in windows], device=device)
    scored = positions.unsqueeze(0) >= (n_kept - n_scored).unsqueeze(1)

    # torch.where rather than a multiplication, so unscored NaN positions cannot leak into the sum.
    nll = torch.where(scored, -token_logprobs, torch.zeros_like(token_logprobs))
    return nll.double().sum(dim=-1).cpu()


def compute_perplexity(
    model: torch.nn.Module,
    token_documents: Sequence[Sequence[int]],
    texts: Sequence[str],
    window: int,
    batch_size: int,
    prefix_token_id: int,
    device=None,
    fill_last_window: bool = True,
) -> dict:
    """Compute token, word and byte-level perplexity of `model` on held-out documents.

    Args:
        model: a causal language model, for example GPTNeoXForCausalLM.
        token_documents: token ids of each document, without any prefix token.
        texts: the text of each document, for word and byte counts.
        window: maximum input tokens per forward pass, at most the model's context length.
        batch_size: windows per forward pass. Only windows of equal input length share a batch, so no
            padding is needed.
        prefix_token_id: token placed before each document (the end-of-text token for Pythia).
        device: device of the inputs; by default the model's device.
        fill_last_window: see `plan_windows`; True reproduces lm-evaluation-harness.

    Returns:
        A dict with token_perplexity, word_perplexity, bits_per_byte, nll_sum (nats), n_tokens, n_words,
        n_bytes, n_documents, n_windows, window and n_nan_windows. A window with a NaN or infinite NLL (a
        diverged model) is counted in n_nan_windows and logged. It makes nll_sum and every perplexity NaN
        or inf, and nothing is raised.
    """
    if len(token_documents) != len(texts):
        raise ValueError(
            f"got {len(token_documents)} token documents but {len(texts)} texts; expected one text per document"
        )
    if not token_documents:
        raise ValueError("token_documents is empty; select at least one document")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    max_positions = getattr(model.config, "max_position_embeddings", None)
    if max_positions is not None and window > max_positions:
        raise ValueError(f"window={window} exceeds the model's max_position_embeddings={max_positions}")

    n_tokens = sum(len(tokens) for tokens in token_documents)
    n_words = sum(count_words(text) for text in texts)
    n_bytes = sum(count_bytes(text) for text in texts)
    if n_bytes == 0:
        raise ValueError("every text is empty, so word and byte perplexity are undefined; pass the document texts")

    device = next(model.parameters()).device if device is None else torch.device(device)
    vocab_in = model.get_input_embeddings().num_embeddings
    sequences, windows = _prefixed_windows(token_documents, window, prefix_token_id, vocab_in, fill_last_window)
    batches = _equal_length_batches(windows, batch_size)
    logger.info(
        "Computing perplexity on %d documents, %d tokens, %d windows of at most %d tokens in %d batches on %s",
        len(token_documents), n_tokens, len(windows), window, len(batches), device,
    )

    started = time.perf_counter()
    model.eval()
    nll_sum = 0.0
    n_nan_windows = 0
    nan_documents = set()
    with torch.inference_mode():
        for batch in tqdm(batches, desc="perplexity", unit="batch"):
            window_nll = _window_nll(model, sequences, batch, device)
            nll_sum += float(window_nll.sum())
            bad = ~torch.isfinite(window_nll)
            n_nan_windows += int(bad.sum())
            for position in torch.nonzero(bad).flatten().tolist():
                nan_documents.add(batch[position].document)

    if n_nan_windows:
        logger.warning(
            "%d of %d windows have a NaN or infinite NLL (a diverged model?), in %d documents (first: %s); "
            "the perplexities are not finite",
            n_nan_windows, len(windows), len(nan_documents), sorted(nan_documents)[:5],
        )

    result = {
        "token_perplexity": _safe_exp(nll_sum / n_tokens),
        "word_perplexity": _safe_exp(nll_sum / n_words),
        "bits_per_byte": nll_sum / (n_bytes * math.log(2)),
        "nll_sum": nll_sum,
        "n_tokens": n_tokens,
        "n_words": n_words,
        "n_bytes": n_bytes,
        "n_documents": len(token_documents),
        "n_windows": len(windows),
        "window": window,
        "n_nan_windows": n_nan_windows,
    }
    elapsed = time.perf_counter() - started
    logger.info(
        "Perplexity done in %.1f s (%.0f tokens/s): token %.4g, word %.4g, bits per byte %.4g",
        elapsed, n_tokens / max(elapsed, 1e-9),
        result["token_perplexity"], result["word_perplexity"], result["bits_per_byte"],
    )
    return result


def _prefixed_windows(
    token_documents: Sequence[Sequence[int]],
    window: int,
    prefix_token_id: int,
    vocab_in: int,
    fill_last_window: bool,
) -> tuple[list[list[int]], list[Window]]:
    """Prepend the prefix token to each document, check the token ids and plan the windows of all documents."""
    sequences = []
    windows = []
    for index, tokens in enumerate(token_documents):
        if len(tokens) == 0:
            raise ValueError(f"document {index} has no tokens; drop empty documents first (select_documents does)")

        sequence = [int(prefix_token_id)] + [int(token) for token in tokens]
        if min(sequence) < 0 or max(sequence) >= vocab_in:
            raise ValueError(
                f"document {index} (or prefix_token_id={prefix_token_id}) has token ids outside [0, {vocab_in}), "
                "the model's input embedding size"
            )
        sequences.append(sequence)
        windows.extend(plan_windows(len(tokens), window, document=index, fill_last_window=fill_last_window))
    return sequences, windows


def _equal_length_batches(windows: list[Window], batch_size: int) -> list[list[Window]]:
    """Group windows by input length, shortest first, and cut each group into batches of `batch_size`."""
    by_length: dict[int, list[Window]] = defaultdict(list)
    for item in windows:
        by_length[item.end - item.start].append(item)

    batches = []
    for _, group in sorted(by_length.items()):
        for first in range(0, len(group), batch_size):
            batches.append(group[first : first + batch_size])
    return batches


def _safe_exp(value: float) -> float:
    """Return exp(value), or inf where it overflows, keeping NaN as NaN."""
    try:
        return math.exp(value)
    except OverflowError:
        return math.inf
