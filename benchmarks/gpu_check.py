"""GPU check: the scorer and the global threshold on Pythia-shaped models, and two leased jobs.

On a machine with one GPU this prints the device, then for randomly initialised GPT-NeoX models
shaped like Pythia-160M, 1.4B and 6.9B in bfloat16: the time and peak extra memory of the global
magnitude threshold over the four block linears, and the scorer's throughput at k = 50, 200 and 500
with a 50-token suffix. Last, two processes lease the single GPU at once: they must take turns.
Each result is one JSON line. `--dry-run` runs the same steps on the CPU with tiny shapes, so CI
checks the script without a GPU.

Usage: python benchmarks/gpu_check.py [--dry-run]
"""

import argparse
import json
import multiprocessing
import tempfile
import time

import numpy as np
import torch

SHAPES = {
    "pythia-160m": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072},
    "pythia-1.4b": {"hidden_size": 2048, "num_hidden_layers": 24, "num_attention_heads": 16, "intermediate_size": 8192},
    "pythia-6.9b": {"hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32, "intermediate_size": 16384},
}
DRY_RUN_SHAPE = {"tiny": {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 256}}
VOCAB_SIZE = 50304
SUFFIX_LENGTH = 50
PREFIX_LENGTHS = (50, 200, 500)
LEASE_HOLD_SECONDS = 2.0


def emit(record: dict) -> None:
    print(json.dumps(record), flush=True)


def random_model(shape: dict, device: torch.device, dtype: torch.dtype, vocab_size: int):
    """Build a GPT-NeoX with random weights directly on `device`, without a CPU copy."""
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    config = GPTNeoXConfig(vocab_size=vocab_size, max_position_embeddings=2048, rotary_pct=0.25, **shape)
    with torch.device("meta"):
        model = GPTNeoXForCausalLM(config)
    model = model.to_empty(device=device).to(dtype)
    generator = torch.Generator(device=device).manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0.0, 0.02, generator=generator)
    return model.eval()


def check_threshold(name: str, model, device: torch.device) -> None:
    from memprune.pruning import build_recipe
    from memprune.strategies import STRATEGY_PRESETS

    synchronize(device)
    before = torch.cuda.memory_allocated(device) if device.type == "cuda" else 0
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    recipe = build_recipe(model, "global_magnitude", STRATEGY_PRESETS["global_magnitude"], 0.5, seed=0)
    synchronize(device)
    seconds = time.perf_counter() - started
    peak_extra = (torch.cuda.max_memory_allocated(device) - before) if device.type == "cuda" else None
    largest = max(tensor["numel"] for tensor in recipe["tensors"]) * 2
    emit({
        "name": f"{name}/global_threshold", "seconds": round(seconds, 3), "pruned": recipe["total_pruned"],
        "numel": recipe["total_numel"], "peak_extra_mib": None if peak_extra is None else round(peak_extra / 2**20, 1),
        "largest_tensor_mib": round(largest / 2**20, 1),
    })


def check_scorer(name: str, model, device: torch.device, n_samples: int, prefix_lengths, vocab_size: int) -> None:
    from memprune.scoring import score_memorization

    rng = np.random.default_rng(0)
    length = max(prefix_lengths) + SUFFIX_LENGTH
    input_ids = rng.integers(0, vocab_size, size=(n_samples, length))
    for k in prefix_lengths:
        score_memorization(model, input_ids[:2], np.arange(2), "member", [k], SUFFIX_LENGTH, batch_size=2, device=device)
        synchronize(device)
        started = time.perf_counter()
        table = score_memorization(model, input_ids, np.arange(n_samples), "member", [k], SUFFIX_LENGTH, batch_size=n_samples, device=device)
        synchronize(device)
        seconds = time.perf_counter() - started
        tokens = n_samples * (k + SUFFIX_LENGTH - 1)
        emit({
            "name": f"{name}/scorer_k{k}", "seconds": round(seconds, 3), "samples": n_samples, "rows": table.num_rows,
            "tokens_per_second": round(tokens / seconds), "batch_size": n_samples,
        })


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def hold_lease(lock_dir: str, n_devices, results) -> None:
    from memprune.devices import lease_device

    with lease_device(lock_dir=lock_dir, n_devices=n_devices) as device:
        started = time.time()
        time.sleep(LEASE_HOLD_SECONDS)
        results.put((str(device), started, time.time()))


def check_leases(dry_run: bool) -> None:
    """Start two processes that each lease a device; on one GPU they must take turns."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    with tempfile.TemporaryDirectory() as lock_dir:
        n_devices = 1 if dry_run else None
        processes = [context.Process(target=hold_lease, args=(lock_dir, n_devices, results)) for _ in range(2)]
        for process in processes:
            process.start()
        intervals = sorted(results.get(timeout=120) for _ in processes)
        for process in processes:
            process.join()
    (first_device, first_start, first_end), (second_device, second_start, second_end) = sorted(intervals, key=lambda item: item[1])
    took_turns = first_device != second_device or second_start >= first_end
    emit({"name": "leases/two_jobs_one_gpu", "devices": [first_device, second_device], "took_turns": took_turns,
          "overlap_seconds": round(max(0.0, first_end - second_start), 3)})
    if not took_turns:
        raise SystemExit("two leased jobs held the same GPU at once")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="tiny shapes on the CPU, for CI")
    arguments = parser.parse_args()

    if arguments.dry_run:
        device, dtype, shapes, n_samples, prefix_lengths, vocab_size = torch.device("cpu"), torch.bfloat16, DRY_RUN_SHAPE, 4, (8, 16), 512
    else:
        if not torch.cuda.is_available():
            raise SystemExit("no CUDA device; run with --dry-run to check the script on the CPU")
        device, dtype, shapes, n_samples, prefix_lengths, vocab_size = torch.device("cuda", 0), torch.bfloat16, SHAPES, 64, PREFIX_LENGTHS, VOCAB_SIZE

    from memprune.devices import describe_device

    emit({"name": "device", "device": describe_device(device)})
    for name, shape in shapes.items():
        started = time.perf_counter()
        model = random_model(shape, device, dtype, vocab_size)
        emit({"name": f"{name}/build", "seconds": round(time.perf_counter() - started, 2),
              "parameters": sum(parameter.numel() for parameter in model.parameters())})
        check_threshold(name, model, device)
        check_scorer(name, model, device, n_samples, prefix_lengths, vocab_size)
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()
    check_leases(arguments.dry_run)


if __name__ == "__main__":
    main()
