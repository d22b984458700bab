"""Score verbatim memorization: does greedy decoding from a k-token prefix reproduce the true suffix?

Each sample is a row of token ids whose last S tokens are the suffix and whose k tokens right before it
are the prefix (no BOS token is prepended). Greedy decoding reproduces the suffix exactly if and only if,
in one teacher-forced forward pass over prefix + suffix, the argmax at every suffix-predicting position
is the true next token: up to the first miss both see the same context. `score_memorization` therefore
runs one forward pass per batch and prefix length k, over the k + S - 1 tokens that predict the suffix,
and computes LM-head logits only at the S suffix-predicting positions.

`score_memorization_generate` is the reference: it calls `model.generate` greedily and compares the
generated tokens with the true suffix. `compare_modes` checks that both agree, and reports whether each
disagreement sits at a near tie between the top two logits, where float rounding can flip the argmax.
"""

import inspect
import logging
import math
import time
from collections.abc import Sequence

import numpy as np
import polars as pl
import pyarrow as pa
import torch
from tqdm import tqdm

logger = logging.getLogger(__name__)

SPLITS = ("member", "nonmember")

SCORES_SCHEMA = pa.schema(
    [
        pa.field("sample_id", pa.int64(), nullable=False),
        pa.field("split", pa.string(), nullable=False),
        pa.field("k", pa.int32(), nullable=False),
        pa.field("exact_match", pa.bool_(), nullable=False),
        pa.field("match_length", pa.int32(), nullable=False),
        pa.field("token_accuracy", pa.float32()),
        pa.field("suffix_loss", pa.float32()),
        pa.field("suffix_logprobs", pa.list_(pa.float32())),
        pa.field("min_top2_gap", pa.float32()),
    ]
)
GENERATE_SCORES_SCHEMA = SCORES_SCHEMA.append(pa.field("generated_token_accuracy", pa.float32()))


def stack_input_ids(rows: Sequence[Sequence[int]], source: str = "input_ids") -> np.ndarray:
    """Stack token id rows into an (N, L) int64 array, requiring every row to have the same length.

    Args:
        rows: token ids per sample, for example the `input_ids` column of members.parquet as lists.
        source: name of the data in error messages, for example the Parquet file path.

    Raises:
        ValueError: naming the first row whose length differs from row 0, or a missing (null) row.
    """
    rows = list(rows)
    if not rows:
        raise ValueError(f"{source} contains no samples")

    length = None
    for index, row in enumerate(rows):
        if row is None:
            raise ValueError(f"{source}: input_ids of row {index} is missing (null)")
        if length is None:
            length = len(row)
        elif len(row) != length:
            raise ValueError(
                f"{source}: input_ids of row {index} has {len(row)} tokens, but row 0 has {length}; "
                "every sample needs the same number of tokens (max prefix length + suffix length)"
            )
    return np.asarray(rows, dtype=np.int64)


def _validate_scoring_inputs(
    model: torch.nn.Module,
    input_ids,
    sample_ids,
    split: str,
    prefix_lengths: Sequence[int],
    suffix_length: int,
    batch_size: int,
) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Check the arguments of the scorers and return (input_ids, sample_ids, prefix_lengths) normalised."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if isinstance(suffix_length, bool) or not isinstance(suffix_length, int) or suffix_length < 1:
        raise ValueError(f"suffix_length must be a positive integer, got {suffix_length!r}")

    try:
        token_array = np.asarray(input_ids)
    except ValueError as error:
        raise ValueError(f"input_ids is not rectangular (rows of different lengths): {error}") from error
    if token_array.dtype == object or token_array.ndim != 2:
        raise ValueError(
            f"input_ids must be a rectangular (N, L) integer array, got shape {token_array.shape} "
            f"and dtype {token_array.dtype}; rows of different lengths are not supported"
        )
    if not np.issubdtype(token_array.dtype, np.integer):
        raise ValueError(f"input_ids must contain integer token ids, got dtype {token_array.dtype}")
    token_array = token_array.astype(np.int64, copy=False)

    n_samples, total_length = token_array.shape
    sample_array = np.asarray(sample_ids, dtype=np.int64)
    if sample_array.shape != (n_samples,):
        raise ValueError(f"got {sample_array.size} sample_ids for {n_samples} rows of input_ids")
    if np.unique(sample_array).size != n_samples:
        raise ValueError(f"sample_ids contains {n_samples - np.unique(sample_array).size} duplicate ids")

    max_prefix_length = total_length - suffix_length
    ks = [int(k) for k in prefix_lengths]
    if not ks:
        raise ValueError("prefix_lengths is empty; give at least one prefix length k")
    for k in ks:
        if k < 1:
            raise ValueError(f"prefix length k={k} is invalid; k must be >= 1 because no BOS token is prepended")
        if k > max_prefix_length:
            raise ValueError(
                f"prefix length k={k} exceeds the stored prefix L - S = {total_length} - {suffix_length} = "
                f"{max_prefix_length} tokens; use k <= {max_prefix_length} or extract longer samples"
            )
    if len(set(ks)) != len(ks):
        raise ValueError(f"prefix_lengths contains duplicates: {ks}")

    vocab_in = model.get_input_embeddings().num_embeddings
    if n_samples and (token_array.min() < 0 or token_array.max() >= vocab_in):
        raise ValueError(
            f"input_ids contains token ids outside [0, {vocab_in}) (min {token_array.min()}, "
            f"max {token_array.max()}), the model's input embedding size"
        )
    return token_array, sample_array, ks


def _model_device(model: torch.nn.Module, device) -> torch.device:
    """Return the device for the inputs: `device`, which must hold the model, or the model's own device."""
    model_device = next(model.parameters()).device
    if device is None:
        return model_device

    device = torch.device(device)
    if device.type != model_device.type or (device.index is not None and device.index != model_device.index):
        raise ValueError(f"device {device} differs from the model's device {model_device}; move the model first")
    return device


def supports_logits_to_keep(model: torch.nn.Module) -> bool:
    """Return whether the model's forward takes `logits_to_keep` (GPTNeoXForCausalLM does in transformers 5)."""
    return "logits_to_keep" in inspect.signature(model.forward).parameters


def suffix_logits(model: torch.nn.Module, window: torch.Tensor, suffix_length: int) -> torch.Tensor:
    """Run one forward pass and return the logits at the last `suffix_length` positions only.

    With `logits_to_keep` the model itself slices the hidden states before its LM head. Without it, the
    base model runs and `model.get_output_embeddings()` is applied to the selected hidden states.

    Args:
        model: a causal language model in eval mode.
        window: (B, T) token ids, T >= suffix_length. The attention mask is all ones (no padding).
        suffix_length: number of trailing positions whose logits are computed.

    Returns:
        (B, suffix_length, V) logits, V being the model's output vocabulary size.
    """
    attention_mask = torch.ones_like(window)
    if supports_logits_to_keep(model):
        output = model(input_ids=window, attention_mask=attention_mask, use_cache=False, logits_to_keep=suffix_length)
        return output.logits

    # NOTE: this path skips anything the model's own forward does after its LM head (logit scaling or
    # soft-capping in some architectures); GPT-NeoX does none, but check before relying on it elsewhere.
    hidden = model.base_model(input_ids=window, attention_mask=attention_mask, use_cache=False).last_hidden_state
    return model.get_output_embeddings()(hidden[:, -suffix_length:])


def _match_statistics(predictions: torch.Tensor, targets: torch.Tensor) -> dict[str, np.ndarray]:
    """Compute exact_match, match_length and token accuracy of (B, S) predicted vs true suffix tokens."""
    matches = predictions == targets
    return {
        "exact_match": matches.all(dim=-1).cpu().numpy(),
        "match_length": matches.int().cumprod(dim=-1).sum(dim=-1).cpu().numpy().astype(np.int32),
        "accuracy": matches.float().mean(dim=-1).cpu().numpy().astype(np.float32),
    }


def _min_top2_gap(logits: torch.Tensor) -> np.ndarray:
    """Return, per sample, the smallest top-1 minus top-2 logit gap over the positions of (B, S, V) logits."""
    top2 = logits.topk(2, dim=-1).values
    return (top2[..., 0] - top2[..., 1]).min(dim=-1).values.cpu().numpy().astype(np.float32)


def _score_batch(
    model: torch.nn.Module, window: torch.Tensor, targets: torch.Tensor, logits_dtype: torch.dtype
) -> dict[str, np.ndarray]:
    """Score one batch teacher-forced: `window` is prefix + suffix[:-1], `targets` the (B, S) true suffix."""
    suffix_length = targets.shape[1]
    logits = suffix_logits(model, window, suffix_length).to(logits_dtype)

    # log p(target) = target logit - logsumexp(logits), without materialising a second (B, S, V) tensor.
    target_logprobs = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)
    target_logprobs = target_logprobs.float()

    statistics = _match_statistics(logits.argmax(dim=-1), targets)
    statistics["suffix_logprobs"] = target_logprobs.cpu().numpy()
    statistics["suffix_loss"] = (-target_logprobs.mean(dim=-1)).cpu().numpy()
    statistics["min_top2_gap"] = _min_top2_gap(logits)
    return statistics


def _list_array(matrix: np.ndarray) -> pa.Array:
    """Convert an (N, S) float matrix to a pyarrow list<float32> array with one list per row."""
    n_rows, width = matrix.shape
    offsets = pa.array(np.arange(0, (n_rows + 1) * width, width, dtype=np.int32))
    values = pa.array(matrix.astype(np.float32).ravel())
    return pa.ListArray.from_arrays(offsets, values, type=pa.list_(pa.float32()))


def _count_nonfinite_losses(losses: np.ndarray, k: int, split: str, sample_ids: np.ndarray) -> int:
    """Count rows whose suffix loss is NaN or infinite and log a warning with the count and some ids."""
    bad = ~np.isfinite(losses)
    n_bad = int(bad.sum())
    if n_bad:
        logger.warning(
            "%d of %d %s samples at k=%d have a non-finite suffix_loss (NaN or inf logits, a diverged model?); "
            "rows kept, first sample ids: %s",
            n_bad, losses.size, split, k, sample_ids[bad][:5].tolist(),
        )
    return n_bad


def score_memorization(
    model: torch.nn.Module,
    input_ids: np.ndarray,
    sample_ids: Sequence[int],
    split: str,
    prefix_lengths: Sequence[int],
    suffix_length: int,
    batch_size: int,
    device=None,
    logits_dtype: torch.dtype = torch.float32,
) -> pa.Table:
    """Score extraction of every sample at every prefix length with one teacher-forced pass per batch.

    For prefix length k the model reads the k prefix tokens and the first S - 1 suffix tokens: k + S - 1
    tokens, no padding, attention mask all ones. LM-head logits are computed only at the S positions that
    predict the suffix.

    Args:
        model: a causal language model (for example GPTNeoXForCausalLM); it is put in eval mode.
        input_ids: (N, L) integer token ids; the suffix is the last `suffix_length` tokens of each row.
        sample_ids: N unique sample ids.
        split: "member" or "nonmember", copied into every row.
        prefix_lengths: the prefix lengths k to score, each 1 <= k <= L - S.
        suffix_length: S, the number of suffix tokens.
        batch_size: samples per forward pass.
        device: device of the inputs; by default the model's device. The model must already be on it.
        logits_dtype: dtype the logits are cast to before argmax, log-softmax and gaps.

    Returns:
        A table with schema `SCORES_SCHEMA`, one row per k and sample (ordered by k, then input order):
        exact_match (greedy decoding reproduces the whole suffix), match_length (leading suffix tokens
        matched before the first miss), token_accuracy (fraction of suffix positions whose argmax is right),
        suffix_loss (mean NLL over the suffix, nats), suffix_logprobs (log p of each true suffix token) and
        min_top2_gap (smallest top-1 minus top-2 logit gap over the suffix positions). A diverged model's
        rows are kept with a NaN suffix_loss and counted in a warning; their match columns come from the
        argmax of NaN logits and mean nothing.

    Raises:
        ValueError: on a k larger than L - S, non-rectangular input_ids, or other invalid arguments.
    """
    token_array, sample_array, ks = _validate_scoring_inputs(
        model, input_ids, sample_ids, split, prefix_lengths, suffix_length, batch_size
    )
    device = _model_device(model, device)
    model.eval()

    n_samples, total_length = token_array.shape
    if n_samples == 0:
        logger.warning("No %s samples to score; returning an empty scores table", split)
        return SCORES_SCHEMA.empty_table()

    n_batches = math.ceil(n_samples / batch_size)
    logger.info(
        "Scoring %d %s samples (L=%d) at k=%s with S=%d, batch size %d on %s (teacher-forced)",
        n_samples, split, total_length, ks, suffix_length, batch_size, device,
    )

    started = time.perf_counter()
    n_tokens = 0
    n_nonfinite = 0
    tables = []
    progress = tqdm(total=n_batches * len(ks), desc=f"score {split}", unit="batch")
    with torch.inference_mode(), progress:
        for k in ks:
            window_start = total_length - suffix_length - k
            batches = []
            for start in range(0, n_samples, batch_size):
                rows = torch.from_numpy(token_array[start : start + batch_size]).to(device)
                window = rows[:, window_start : total_length - 1]
                targets = rows[:, total_length - suffix_length :]
                batches.append(_score_batch(model, window, targets, logits_dtype))
                n_tokens += window.numel()
                progress.update(1)

            columns = {name: np.concatenate([batch[name] for batch in batches]) for name in batches[0]}
            n_nonfinite += _count_nonfinite_losses(columns["suffix_loss"], k, split, sample_array)
            tables.append(_scores_table(sample_array, split, k, columns))

    elapsed = time.perf_counter() - started
    table = pa.concat_tables(tables)
    logger.info(
        "Scored %d rows (%d samples x %d k) in %.1f s, %.0f tokens/s; %d rows with non-finite suffix_loss",
        table.num_rows, n_samples, len(ks), elapsed, n_tokens / max(elapsed, 1e-9), n_nonfinite,
    )
    return table


def _match_columns(sample_ids: np.ndarray, split: str, k: int, columns: dict[str, np.ndarray]) -> dict[str, pa.Array]:
    """Return the columns both scoring modes share: ids, k and the greedy match statistics."""
    n_rows = sample_ids.size
    return {
        "sample_id": pa.array(sample_ids, type=pa.int64()),
        "split": pa.array([split] * n_rows, type=pa.string()),
        "k": pa.array(np.full(n_rows, k, dtype=np.int32)),
        "exact_match": pa.array(columns["exact_match"], type=pa.bool_()),
        "match_length": pa.array(columns["match_length"], type=pa.int32()),
    }


def _scores_table(sample_ids: np.ndarray, split: str, k: int, columns: dict[str, np.ndarray]) -> pa.Table:
    """Assemble the rows of one prefix length k into a table with `SCORES_SCHEMA`."""
    return pa.table(
        {
            **_match_columns(sample_ids, split, k, columns),
            "token_accuracy": pa.array(columns["accuracy"], type=pa.float32()),
            "suffix_loss": pa.array(columns["suffix_loss"].astype(np.float32), type=pa.float32()),
            "suffix_logprobs": _list_array(columns["suffix_logprobs"]),
            "min_top2_gap": pa.array(columns["min_top2_gap"], type=pa.float32()),
        },
        schema=SCORES_SCHEMA,
    )


def _pad_token_id(model: torch.nn.Module) -> int:
    """Return the pad token id for `generate`: the model's pad or end-of-text token, else 0."""
    generation_config = getattr(model, "generation_config", None)
    for config in (generation_config, model.config):
        for name in ("pad_token_id", "eos_token_id"):
            value = getattr(config, name, None)
            if isinstance(value, (list, tuple)):
                value = value[0] if value else None
            if value is not None:
                return int(value)
    return 0


def score_memorization_generate(
    model: torch.nn.Module,
    input_ids: np.ndarray,
    sample_ids: Sequence[int],
    split: str,
    prefix_lengths: Sequence[int],
    suffix_length: int,
    batch_size: int,
    device=None,
    logits_dtype: torch.dtype = torch.float32,
    use_cache: bool = True,
) -> pa.Table:
    """Score extraction with `model.generate` (greedy), the slow reference for `score_memorization`.

    Each batch of k-token prefixes (equal length, no padding) is decoded with `do_sample=False`,
    `min_new_tokens=S`, `max_new_tokens=S`. The end-of-text token is switched off for this call
    (`eos_token_id=None`): otherwise `min_new_tokens` would forbid it and the reference could never
    reproduce a suffix that contains a document boundary, while the greedy argmax can.

    Args:
        model, input_ids, sample_ids, split, prefix_lengths, suffix_length, batch_size, device: as for
            `score_memorization`.
        logits_dtype: dtype the raw logits returned by `generate` are cast to for the gaps.
        use_cache: whether `generate` uses the KV cache. EleutherAI's reference evaluation ran without it,
            which recomputes the whole prefix at every step.

    Returns:
        A table with schema `GENERATE_SCORES_SCHEMA`. exact_match and match_length compare the generated
        tokens with the true suffix. generated_token_accuracy is the fraction of the S generated tokens
        equal to the true suffix token at the same position (the memorization score of Biderman et al.
        2023). min_top2_gap is taken from the raw logits along the generated path, so after the first
        miss it describes positions that teacher forcing never evaluates. token_accuracy, suffix_loss and
        suffix_logprobs are teacher-forced quantities and are null in this mode.
    """
    token_array, sample_array, ks = _validate_scoring_inputs(
        model, input_ids, sample_ids, split, prefix_lengths, suffix_length, batch_size
    )
    device = _model_device(model, device)
    model.eval()
    pad_token_id = _pad_token_id(model)

    n_samples, total_length = token_array.shape
    if n_samples == 0:
        logger.warning("No %s samples to score; returning an empty scores table", split)
        return GENERATE_SCORES_SCHEMA.empty_table()

    n_batches = math.ceil(n_samples / batch_size)
    logger.info(
        "Scoring %d %s samples (L=%d) at k=%s with S=%d, batch size %d on %s (generate, use_cache=%s)",
        n_samples, split, total_length, ks, suffix_length, batch_size, device, use_cache,
    )

    started = time.perf_counter()
    n_processed_steps = 0
    tables = []
    progress = tqdm(total=n_batches * len(ks), desc=f"generate {split}", unit="batch")
    with torch.inference_mode(), progress:
        for k in ks:
            prefix_start = total_length - suffix_length - k
            batches = []
            for start in range(0, n_samples, batch_size):
                rows = torch.from_numpy(token_array[start : start + batch_size]).to(device)
                prefix = rows[:, prefix_start : total_length - suffix_length]
                targets = rows[:, total_length - suffix_length :]
                batch, n_overridden = _generate_batch(model, prefix, targets, pad_token_id, use_cache, logits_dtype)
                batches.append(batch)
                n_processed_steps += n_overridden
                progress.update(1)

            columns = {name: np.concatenate([batch[name] for batch in batches]) for name in batches[0]}
            tables.append(_generate_table(sample_array, split, k, columns))

    if n_processed_steps:
        logger.warning(
            "%d generated tokens differ from the argmax of the raw logits: a logits processor from the "
            "model's generation_config changed greedy decoding, so the reference is not plain greedy",
            n_processed_steps,
        )
    elapsed = time.perf_counter() - started
    table = pa.concat_tables(tables)
    logger.info(
        "Generated %d rows (%d samples x %d k) in %.1f s, %.0f generated tokens/s",
        table.num_rows, n_samples, len(ks), elapsed, table.num_rows * suffix_length / max(elapsed, 1e-9),
    )
    return table


def _generate_batch(
    model, prefix: torch.Tensor, targets: torch.Tensor, pad_token_id: int, use_cache: bool, logits_dtype
) -> tuple[dict[str, np.ndarray], int]:
    """Decode one batch greedily; return its statistics and the count of tokens that are not the raw argmax."""
    suffix_length = targets.shape[1]
    output = model.generate(
        input_ids=prefix,
        attention_mask=torch.ones_like(prefix),
        do_sample=False,
        num_beams=1,
        min_new_tokens=suffix_length,
        max_new_tokens=suffix_length,
        use_cache=use_cache,
        pad_token_id=pad_token_id,
        eos_token_id=None,
        output_logits=True,
        return_dict_in_generate=True,
    )
    generated = output.sequences[:, prefix.shape[1] :]
    if generated.shape != targets.shape:
        raise RuntimeError(f"generate returned {generated.shape[1]} new tokens, expected {suffix_length}")

    raw_logits = torch.stack(output.logits, dim=1).to(logits_dtype)
    n_overridden = int((raw_logits.argmax(dim=-1) != generated).sum())

    statistics = _match_statistics(generated, targets)
    statistics["min_top2_gap"] = _min_top2_gap(raw_logits)
    return statistics, n_overridden


def _generate_table(sample_ids: np.ndarray, split: str, k: int, columns: dict[str, np.ndarray]) -> pa.Table:
    """Assemble the rows of one prefix length k into a table with `GENERATE_SCORES_SCHEMA`."""
    n_rows = sample_ids.size
    return pa.table(
        {
            **_match_columns(sample_ids, split, k, columns),
            "token_accuracy": pa.nulls(n_rows, type=pa.float32()),
            "suffix_loss": pa.nulls(n_rows, type=pa.float32()),
            "suffix_logprobs": pa.nulls(n_rows, type=pa.list_(pa.float32())),
            "min_top2_gap": pa.array(columns["min_top2_gap"], type=pa.float32()),
            "generated_token_accuracy": pa.array(columns["accuracy"], type=pa.float32()),
        },
        schema=GENERATE_SCORES_SCHEMA,
    )


def compare_modes(fast_table, reference_table, tie_gap: float = 1e-4) -> dict:
    """Compare teacher-forced scores with generate-mode scores row by row.

    Rows are joined on (sample_id, split, k). A disagreement on exact_match or match_length is explained
    by a near tie when either table's min_top2_gap for that row is below `tie_gap`. That test is
    conservative: the gap is the minimum over all suffix positions, not the gap at the position where
    the modes diverge.

    Args:
        fast_table: output of `score_memorization` (pyarrow Table or polars DataFrame).
        reference_table: output of `score_memorization_generate`.
        tie_gap: logit gap below which two top candidates count as tied.

    Returns:
        A dict with the counts n_rows (joined rows), n_missing_in_reference, n_missing_in_fast,
        n_exact_match_disagreements, n_match_length_disagreements, n_disagreements (rows with either),
        n_explained_by_tie and n_unexplained. `agree` is True when every row is in both tables and every
        disagreement is explained. `disagreements` lists one dict per disagreeing row, with both tables'
        exact_match, match_length and min_top2_gap and the explained_by_tie flag.
    """
    keys = ["sample_id", "split", "k"]
    compared = ["exact_match", "match_length", "min_top2_gap"]
    fast = _as_polars(fast_table).select(keys + compared)
    reference = _as_polars(reference_table).select(keys + compared)

    joined = fast.join(reference, on=keys, how="inner", suffix="_reference")
    n_missing_in_reference = fast.height - joined.height
    n_missing_in_fast = reference.height - joined.height

    joined = joined.with_columns(
        (pl.col("exact_match") != pl.col("exact_match_reference")).alias("exact_match_differs"),
        (pl.col("match_length") != pl.col("match_length_reference")).alias("match_length_differs"),
        (
            (pl.col("min_top2_gap") < tie_gap).fill_null(False)
            | (pl.col("min_top2_gap_reference") < tie_gap).fill_null(False)
        ).alias("explained_by_tie"),
    )
    disagreeing = joined.filter(pl.col("exact_match_differs") | pl.col("match_length_differs"))
    n_explained = int(disagreeing["explained_by_tie"].sum())

    report = {
        "n_rows": joined.height,
        "n_missing_in_reference": n_missing_in_reference,
        "n_missing_in_fast": n_missing_in_fast,
        "n_exact_match_disagreements": int(joined["exact_match_differs"].sum()),
        "n_match_length_disagreements": int(joined["match_length_differs"].sum()),
        "n_disagreements": disagreeing.height,
        "n_explained_by_tie": n_explained,
        "n_unexplained": disagreeing.height - n_explained,
        "disagreements": disagreeing.drop(["exact_match_differs", "match_length_differs"]).to_dicts(),
    }
    report["agree"] = n_missing_in_reference == 0 and n_missing_in_fast == 0 and report["n_unexplained"] == 0

    log = logger.info if report["agree"] else logger.warning
    log(
        "Compared %d rows: %d disagreements (%d explained by a near tie below %g), %d/%d rows missing",
        joined.height, disagreeing.height, n_explained, tie_gap, n_missing_in_reference, n_missing_in_fast,
    )
    return report


def _as_polars(table) -> pl.DataFrame:
    """Return a polars DataFrame for a pyarrow Table or polars DataFrame."""
    if isinstance(table, pl.DataFrame):
        return table
    if isinstance(table, pa.Table):
        return pl.from_arrow(table)
    raise TypeError(f"expected a pyarrow Table or polars DataFrame, got {type(table).__name__}")
