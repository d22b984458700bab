"""Benchmark the one-pass teacher-forced scorer against greedy generation, and against the hardware.

For each model and prefix length k (suffix length S = 50 unless --suffix-length is given), on the same N
samples and batch size:

- the time of ``memprune.scoring.score_memorization`` (one forward pass over k + S - 1 tokens per batch,
  logits only at the S suffix positions);
- against ``score_memorization_generate`` with the KV cache, and with the cache off (as EleutherAI's
  reference memorization evaluation generated), with the agreement of exact_match and match_length;
- the achieved FLOP/s of the scorer against the measured throughput of a dense ``torch.matmul`` of the
  model's own sizes, (N * (k + S - 1), hidden) x (hidden, intermediate), in the same dtype.

Scorer FLOPs per batch of B sequences of T = k + S - 1 tokens (an estimate, counting a multiply-add as 2):
    2 * P * B * T                  the weight matmuls, P = parameters outside embed_in and embed_out
  + 2 * n_layers * B * T^2 * hidden  attention scores and weighted values, causal half only
  + 2 * hidden * vocab * B * S     the LM head at the S kept positions
Attention kernels that compute the masked half too do up to twice the middle term of work, so the ratio
to the matmul ceiling is a lower bound on their efficiency.

Models: a randomly initialised GPT-NeoX shaped like Pythia-160M (hidden 768, 12 layers, 12 heads,
intermediate 3072, vocab 50304), plus any local ``save_pretrained`` folder given with ``--model``. Inputs
are random token ids, or the first N rows of ``--samples`` (a members.parquet with ``input_ids``).
tokens/s counts the k + S tokens of each scored sample on both sides, so the two rates compare directly.
Values are medians over repeats, measured in the same process after one warm-up call per side (the
no-cache baseline relies on the cached baseline's warm-up). Each
measurement prints one JSON line to stdout; progress goes to stderr.

Usage: python benchmarks/bench_scorer.py [--quick] [--model PATH] [--samples PARQUET] [--device cpu|cuda]
       [--threads N]
"""

import argparse
import json
import logging
import statistics
import time

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import torch
from transformers import AutoModelForCausalLM, GPTNeoXConfig, GPTNeoXForCausalLM

from memprune.scoring import compare_modes, score_memorization, score_memorization_generate

logger = logging.getLogger("bench_scorer")

PYTHIA_160M_SHAPE = {
    "vocab_size": 50304,
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "max_position_embeddings": 2048,
    "rotary_pct": 0.25,
}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="4 samples, k = 50 and 200, one no-cache repeat")
    parser.add_argument("--model", help="a local save_pretrained folder to benchmark besides the random model")
    parser.add_argument("--skip-random-model", action="store_true", help="benchmark only the --model folder")
    parser.add_argument("--samples", help="a Parquet file with an input_ids column to use instead of random tokens")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda")
    parser.add_argument("--dtype", default="float32", choices=sorted(DTYPES), help="model and matmul dtype")
    parser.add_argument("--n-samples", type=int, help="samples per measurement (default 32, 4 with --quick)")
    parser.add_argument("--batch-size", type=int, help="samples per batch on every side (default: all samples)")
    parser.add_argument("--prefix-lengths", type=int, nargs="+", help="k values (default 50 200 500)")
    parser.add_argument("--suffix-length", type=int, default=50, help="S, suffix tokens per sample")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of the scorer and cached generate")
    parser.add_argument(
        "--nocache-repeats", type=int, help="repeats of generate without cache (default 3, 1 with --quick)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random model and random tokens")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's own default)")
    args = parser.parse_args()

    if args.n_samples is None:
        args.n_samples = 4 if args.quick else 32
    if args.prefix_lengths is None:
        args.prefix_lengths = [50, 200] if args.quick else [50, 200, 500]
    if args.nocache_repeats is None:
        args.nocache_repeats = 1 if args.quick else 3
    if args.batch_size is None:
        args.batch_size = args.n_samples
    return args


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(function, repeats: int, device: torch.device, warm_up: bool = True):
    """Run `function` once to warm up (unless `warm_up` is False), then `repeats` times.

    Returns:
        (median seconds, result of the last call).
    """
    result = function() if warm_up else None
    times = []
    for _ in range(repeats):
        synchronize(device)
        started = time.perf_counter()
        result = function()
        synchronize(device)
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def random_model(seed: int, device: torch.device, dtype: torch.dtype) -> GPTNeoXForCausalLM:
    torch.manual_seed(seed)
    model = GPTNeoXForCausalLM(GPTNeoXConfig(**PYTHIA_160M_SHAPE))
    return model.to(device=device, dtype=dtype).eval()


def load_model(path: str, device: torch.device, dtype: torch.dtype):
    model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=dtype)
    return model.to(device).eval()


def non_embedding_parameters(model) -> int:
    """Count parameters outside the input embedding and the LM head."""
    excluded = {id(model.get_input_embeddings().weight), id(model.get_output_embeddings().weight)}
    return sum(parameter.numel() for parameter in model.parameters() if id(parameter) not in excluded)


def scorer_flops(model, n_samples: int, k: int, suffix_length: int) -> float:
    """Estimate the FLOPs of one scorer pass over all samples at prefix length k (see the module docstring)."""
    config = model.config
    sequence = k + suffix_length - 1
    vocab = model.get_output_embeddings().weight.shape[0]
    weights = 2 * non_embedding_parameters(model) * n_samples * sequence
    attention = 2 * config.num_hidden_layers * n_samples * sequence**2 * config.hidden_size
    head = 2 * config.hidden_size * vocab * n_samples * suffix_length
    return float(weights + attention + head)


def matmul_flops_per_second(rows: int, hidden: int, intermediate: int, dtype, device, repeats: int) -> float:
    """Measure dense matmul throughput of (rows, hidden) x (hidden, intermediate), the median over repeats."""
    generator = torch.Generator(device="cpu").manual_seed(0)
    left = torch.randn(rows, hidden, generator=generator).to(device=device, dtype=dtype)
    right = torch.randn(hidden, intermediate, generator=generator).to(device=device, dtype=dtype)
    inner_repeats = 10

    def run():
        for _ in range(inner_repeats):
            torch.matmul(left, right)

    seconds, _ = median_seconds(run, repeats, device)
    return 2.0 * rows * hidden * intermediate * inner_repeats / seconds


def read_sample_rows(path: str, n_samples: int) -> list[list[int]]:
    """Read the input_ids of the first `n_samples` rows of a members or non-members Parquet file."""
    rows = pq.read_table(path, columns=["input_ids"]).column("input_ids").to_pylist()[:n_samples]
    if len(rows) < n_samples:
        logger.warning("%s has only %d rows, fewer than --n-samples %d", path, len(rows), n_samples)
    return rows


def sample_tokens(args, vocab_size: int, total_length: int) -> np.ndarray | None:
    """Return (n_samples, total_length) token ids: random, or the last total_length tokens of --samples rows.

    Returns None, with a warning, when a --samples row is shorter than total_length.
    """
    if args.sample_rows is None:
        rng = np.random.default_rng(args.seed)
        return rng.integers(0, vocab_size, size=(args.n_samples, total_length), dtype=np.int64)

    shortest = min(len(row) for row in args.sample_rows)
    if shortest < total_length:
        logger.warning(
            "%s: skipping k + S = %d tokens, since the shortest row has %d tokens", args.samples, total_length, shortest
        )
        return None
    return np.asarray([row[-total_length:] for row in args.sample_rows], dtype=np.int64)


def agreement(fast, reference) -> dict:
    """Fractions of rows where the two modes give the same exact_match and match_length."""
    joined = pl.from_arrow(fast).join(pl.from_arrow(reference), on=["sample_id", "split", "k"], suffix="_reference")
    report = compare_modes(fast, reference)
    return {
        "exact_match_agreement": float((joined["exact_match"] == joined["exact_match_reference"]).mean()),
        "match_length_agreement": float((joined["match_length"] == joined["match_length_reference"]).mean()),
        "n_exact_match": int(joined["exact_match"].sum()),
        "n_unexplained_disagreements": report["n_unexplained"],
    }


def emit(record: dict) -> None:
    print(json.dumps(record), flush=True)


def benchmark_model(name: str, model, args, device: torch.device, dtype: torch.dtype) -> None:
    vocab_size = model.get_input_embeddings().num_embeddings
    context = getattr(model.config, "max_position_embeddings", None)
    common = {
        "model": name,
        "device": str(device),
        "dtype": args.dtype,
        "torch_threads": torch.get_num_threads(),
        "batch_size": args.batch_size,
        "suffix_length": args.suffix_length,
    }

    for k in args.prefix_lengths:
        if context is not None and k + args.suffix_length > context:
            logger.warning("%s: skipping k=%d, since k + S exceeds the context of %d tokens", name, k, context)
            continue

        input_ids = sample_tokens(args, vocab_size, k + args.suffix_length)
        if input_ids is None:
            continue
        sample_ids = list(range(len(input_ids)))
        common["n_samples"] = len(input_ids)
        score_arguments = (model, input_ids, sample_ids, "member", [k], args.suffix_length, args.batch_size)
        sample_tokens_total = len(input_ids) * (k + args.suffix_length)

        logger.info("%s, k=%d: scorer", name, k)
        scorer_seconds, fast = median_seconds(lambda: score_memorization(*score_arguments), args.repeats, device)

        baselines = [("generate_use_cache", True, args.repeats), ("generate_no_cache", False, args.nocache_repeats)]
        for baseline, use_cache, repeats in baselines:
            logger.info("%s, k=%d: %s", name, k, baseline)
            baseline_seconds, reference = median_seconds(
                lambda use_cache=use_cache: score_memorization_generate(*score_arguments, use_cache=use_cache),
                repeats,
                device,
                # The cached run has already warmed up generate; a no-cache warm-up would double its long run.
                warm_up=use_cache,
            )
            emit(
                {
                    "name": f"scorer_time_vs_{baseline}",
                    "k": k,
                    "value": scorer_seconds,
                    "unit": "s",
                    "baseline": baseline,
                    "baseline_value": baseline_seconds,
                    "ratio": baseline_seconds / scorer_seconds,
                    "repeats": args.repeats,
                    "baseline_repeats": repeats,
                    "tokens_per_s": sample_tokens_total / scorer_seconds,
                    "baseline_tokens_per_s": sample_tokens_total / baseline_seconds,
                    **agreement(fast, reference),
                    **common,
                }
            )

        logger.info("%s, k=%d: matmul ceiling", name, k)
        flops = scorer_flops(model, len(input_ids), k, args.suffix_length)
        rows = len(input_ids) * (k + args.suffix_length - 1)
        peak = matmul_flops_per_second(
            rows, model.config.hidden_size, model.config.intermediate_size, dtype, device, args.repeats
        )
        achieved = flops / scorer_seconds
        emit(
            {
                "name": "scorer_flops_vs_matmul",
                "k": k,
                "value": achieved,
                "unit": "FLOP/s",
                "baseline": f"matmul ({rows}, {model.config.hidden_size}) x "
                f"({model.config.hidden_size}, {model.config.intermediate_size})",
                "baseline_value": peak,
                "ratio": achieved / peak,
                "repeats": args.repeats,
                "scorer_flops": flops,
                "non_embedding_parameters": non_embedding_parameters(model),
                **common,
            }
        )


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("memprune").setLevel(logging.WARNING)
    args = parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = DTYPES[args.dtype]
    args.sample_rows = None if args.samples is None else read_sample_rows(args.samples, args.n_samples)

    started = time.perf_counter()
    if not args.skip_random_model:
        benchmark_model("random-pythia-160m", random_model(args.seed, device, dtype), args, device, dtype)
    if args.model:
        benchmark_model(args.model, load_model(args.model, device, dtype), args, device, dtype)
    logger.info("Benchmark done in %.0f s", time.perf_counter() - started)


if __name__ == "__main__":
    main()
