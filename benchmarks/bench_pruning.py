"""Benchmark the memory-lean global magnitude threshold against torch's global_unstructured.

On randomly initialised GPT-NeoX models shaped like Pythia-160M (and, without ``--quick``,
Pythia-410M), this measures over the four block Linear modules of every layer at sparsity 0.5:

- the time and peak extra memory of ``memprune.pruning.build_recipe`` (global magnitude), against
  ``torch.nn.utils.prune.global_unstructured`` with ``L1Unstructured``;
- the time and peak extra memory of ``memprune.pruning.apply_recipe``;
- the size of the largest single pruned tensor, the yardstick for the threshold's memory.

Every measurement runs in a fresh process, so each high-water mark is clean. Peak extra memory is
``torch.cuda.max_memory_allocated`` minus the allocation after model load on CUDA. On CPU it is a
sampled RSS high-water mark (psutil, every 1 ms) minus the RSS after model load, so it can miss
spikes shorter than the sampling interval. glibc keeps freed heap pages mapped, so by default the
CPU figure also counts freed temporaries. ``--exact-cpu-memory`` makes glibc return every block
over 128 KiB at once (``MALLOC_MMAP_THRESHOLD_``), which brings RSS to the live memory but slows
both sides with page faults, so use its times only for comparing the two sides. Values are
medians over repeats. Each measurement prints one JSON line to stdout.

Usage: python benchmarks/bench_pruning.py [--quick] [--device cpu|cuda] [--repeats N] [--exact-cpu-memory]
"""

import argparse
import ctypes
import gc
import json
import logging
import multiprocessing
import os
import statistics
import threading
import time
from concurrent.futures import ProcessPoolExecutor

import psutil
import torch

logger = logging.getLogger("bench_pruning")

MODEL_SHAPES = {
    "pythia-160m": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072},
    "pythia-410m": {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16, "intermediate_size": 4096},
}
VOCAB_SIZE = 50304
SPARSITY = 0.5
STRATEGY = "global_magnitude"
MIB = 2**20
RSS_SAMPLE_SECONDS = 0.001


class PeakMemory:
    """Context manager that records the peak extra memory (bytes) of the code it wraps."""

    def __init__(self, device: str):
        self.device = device
        self.peak_extra = 0
        self._stop = threading.Event()

    def _sample_rss(self) -> None:
        process = psutil.Process()
        while not self._stop.is_set():
            self._peak_rss = max(self._peak_rss, process.memory_info().rss)
            time.sleep(RSS_SAMPLE_SECONDS)

    def __enter__(self):
        gc.collect()
        if self.device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self._base = torch.cuda.memory_allocated()
            return self

        # Hand freed heap pages back to the OS so the RSS baseline is the live memory (glibc only).
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except OSError:
            logger.warning("malloc_trim is unavailable; the CPU memory baseline may include freed pages")
        self._base = psutil.Process().memory_info().rss
        self._peak_rss = self._base
        self._sampler = threading.Thread(target=self._sample_rss, daemon=True)
        self._sampler.start()
        return self

    def __exit__(self, *exc_info):
        if self.device == "cuda":
            torch.cuda.synchronize()
            self.peak_extra = torch.cuda.max_memory_allocated() - self._base
            return False

        self._peak_rss = max(self._peak_rss, psutil.Process().memory_info().rss)
        self._stop.set()
        self._sampler.join()
        self.peak_extra = self._peak_rss - self._base
        return False


def build_model(model_name: str, device: str):
    """Build a randomly initialised GPT-NeoX with the shape of a Pythia model, on ``device``."""
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    config = GPTNeoXConfig(vocab_size=VOCAB_SIZE, max_position_embeddings=2048, **MODEL_SHAPES[model_name])
    torch.manual_seed(0)
    model = GPTNeoXForCausalLM(config).eval()
    return model.to(device)


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def measure_memprune(model_name: str, device: str) -> dict:
    """Time and measure ``build_recipe`` then ``apply_recipe`` in one fresh process."""
    from memprune.pruning import apply_recipe, build_recipe
    from memprune.strategies import STRATEGY_PRESETS

    logging.disable(logging.INFO)
    model = build_model(model_name, device)

    with PeakMemory(device) as build_memory:
        started = time.perf_counter()
        recipe = build_recipe(model, STRATEGY, STRATEGY_PRESETS[STRATEGY], SPARSITY, 0)
        synchronize(device)
        build_seconds = time.perf_counter() - started

    with PeakMemory(device) as apply_memory:
        started = time.perf_counter()
        apply_recipe(model, recipe)
        synchronize(device)
        apply_seconds = time.perf_counter() - started

    largest = max(entry["numel"] * model.get_parameter(entry["name"]).element_size() for entry in recipe["tensors"])
    pruned_set = sum(entry["numel"] * model.get_parameter(entry["name"]).element_size() for entry in recipe["tensors"])
    return {
        "build_seconds": build_seconds,
        "build_peak_extra": build_memory.peak_extra,
        "apply_seconds": apply_seconds,
        "apply_peak_extra": apply_memory.peak_extra,
        "largest_tensor_bytes": largest,
        "pruned_set_bytes": pruned_set,
    }


def measure_torch_global_unstructured(model_name: str, device: str) -> dict:
    """Time and measure ``torch.nn.utils.prune.global_unstructured`` (L1) in one fresh process."""
    from torch.nn.utils import prune

    from memprune.strategies import STRATEGY_PRESETS, resolve_strategy

    logging.disable(logging.INFO)
    model = build_model(model_name, device)
    module_names = resolve_strategy(model, STRATEGY, STRATEGY_PRESETS[STRATEGY])
    parameters = [(model.get_submodule(module_name), "weight") for module_name in module_names]

    with PeakMemory(device) as memory:
        started = time.perf_counter()
        prune.global_unstructured(parameters, pruning_method=prune.L1Unstructured, amount=SPARSITY)
        synchronize(device)
        seconds = time.perf_counter() - started

    return {"seconds": seconds, "peak_extra": memory.peak_extra}


def run_in_fresh_process(function, *args) -> dict:
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as executor:
        return executor.submit(function, *args).result()


def emit(name, value, unit, baseline, baseline_value, repeats, device) -> None:
    """Print one measurement as a JSON line."""
    ratio = value / baseline_value if baseline_value else None
    line = {
        "name": name,
        "value": round(value, 4),
        "unit": unit,
        "baseline": baseline,
        "baseline_value": None if baseline_value is None else round(baseline_value, 4),
        "ratio": None if ratio is None else round(ratio, 4),
        "repeats": repeats,
        "device": device,
    }
    print(json.dumps(line), flush=True)


def benchmark_model(model_name: str, device: str, repeats: int) -> None:
    """Run both sides ``repeats`` times, alternating, and print the medians."""
    ours = []
    theirs = []
    for repeat in range(repeats):
        logger.info("%s: repeat %d of %d", model_name, repeat + 1, repeats)
        ours.append(run_in_fresh_process(measure_memprune, model_name, device))
        theirs.append(run_in_fresh_process(measure_torch_global_unstructured, model_name, device))

    def median(results, key):
        return statistics.median(result[key] for result in results)

    torch_name = "torch.nn.utils.prune.global_unstructured"
    device_label = torch.cuda.get_device_name() if device == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    largest_mib = ours[0]["largest_tensor_bytes"] / MIB
    build_peak_mib = median(ours, "build_peak_extra") / MIB

    emit(
        f"{model_name}/global_threshold_time",
        median(ours, "build_seconds"),
        "s",
        torch_name,
        median(theirs, "seconds"),
        repeats,
        device_label,
    )
    emit(
        f"{model_name}/global_threshold_peak_extra_memory",
        build_peak_mib,
        "MiB",
        torch_name,
        median(theirs, "peak_extra") / MIB,
        repeats,
        device_label,
    )
    emit(
        f"{model_name}/global_threshold_peak_extra_memory_vs_largest_tensor",
        build_peak_mib,
        "MiB",
        "largest_single_tensor",
        largest_mib,
        repeats,
        device_label,
    )
    emit(
        f"{model_name}/build_and_apply_time",
        statistics.median(result["build_seconds"] + result["apply_seconds"] for result in ours),
        "s",
        torch_name,
        median(theirs, "seconds"),
        repeats,
        device_label,
    )
    emit(f"{model_name}/apply_recipe_time", median(ours, "apply_seconds"), "s", None, None, repeats, device_label)
    emit(
        f"{model_name}/apply_recipe_peak_extra_memory",
        median(ours, "apply_peak_extra") / MIB,
        "MiB",
        None,
        None,
        repeats,
        device_label,
    )
    emit(
        f"{model_name}/largest_single_tensor_size",
        largest_mib,
        "MiB",
        "pruned_set_size",
        ours[0]["pruned_set_bytes"] / MIB,
        repeats,
        device_label,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="only the Pythia-160M shape, one repeat")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where the model and pruning run")
    parser.add_argument("--repeats", type=int, default=3, help="repeats per measurement without --quick (default 3)")
    parser.add_argument(
        "--exact-cpu-memory",
        action="store_true",
        help="make glibc unmap freed blocks over 128 KiB so CPU RSS tracks live memory (slower)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda was requested, but torch.cuda.is_available() is False")
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")

    if args.exact_cpu_memory:
        # Read by glibc when each spawned measurement process starts.
        os.environ["MALLOC_MMAP_THRESHOLD_"] = str(128 * 1024)

    model_names = ["pythia-160m"] if args.quick else list(MODEL_SHAPES)
    repeats = 1 if args.quick else args.repeats
    for model_name in model_names:
        benchmark_model(model_name, args.device, repeats)


if __name__ == "__main__":
    main()
