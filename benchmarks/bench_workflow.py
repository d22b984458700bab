"""Benchmark the workflow's own overhead: planning the paper grid and a no-op rerun of the demo.

Planning runs `snakemake -n --configfile config/paper.yaml` (1,153 jobs over seven Pythia models),
which needs neither the data nor the checkpoints. The no-op rerun runs `snakemake --cores 2` on the
default config after a complete demo run, so it measures DAG building and up-to-date checks only;
without a finished demo it is reported as skipped. Each measurement prints one JSON line and is the
median over repeats. The targets (10 s to plan, 20 s for a no-op rerun) are the baselines.

Usage: python benchmarks/bench_workflow.py [--quick] [--repeats N]
"""

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def time_command(command: list[str], repeats: int) -> tuple[float, str]:
    """Return the median wall time in seconds of `command` and the output of its last run."""
    seconds = []
    output = ""
    for _ in range(repeats):
        started = time.perf_counter()
        result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
        seconds.append(time.perf_counter() - started)
        output = result.stdout + result.stderr
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{output[-3000:]}")
    return statistics.median(seconds), output


def emit(name: str, value, unit: str, baseline: str | None, baseline_value, repeats: int, **extra) -> None:
    ratio = value / baseline_value if value is not None and baseline_value else None
    print(json.dumps({
        "name": name, "value": value, "unit": unit, "baseline": baseline, "baseline_value": baseline_value,
        "ratio": ratio, "repeats": repeats, **extra,
    }), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one repeat of each measurement")
    parser.add_argument("--repeats", type=int, default=None, help="repeats per measurement (default 3, 1 with --quick)")
    arguments = parser.parse_args()
    repeats = arguments.repeats or (1 if arguments.quick else 3)

    seconds, output = time_command([*SNAKEMAKE, "-n", "--configfile", "config/paper.yaml"], repeats)
    jobs = next((line.split()[-1] for line in output.splitlines() if line.startswith("total")), None)
    emit("workflow/plan_paper_grid", round(seconds, 2), "s", "target", 10.0, repeats, jobs=jobs)

    if not (REPO / "results/tables/summary.csv").exists():
        emit("workflow/noop_demo_rerun", None, "s", "target", 20.0, 0, skipped="run `make demo` first")
        return
    seconds, output = time_command([*SNAKEMAKE, "--cores", "2"], repeats)
    nothing_to_do = "Nothing to be done" in output
    emit("workflow/noop_demo_rerun", round(seconds, 2), "s", "target", 20.0, repeats, nothing_to_do=nothing_to_do)


if __name__ == "__main__":
    main()
