"""Run every benchmark and print its JSON lines, preceded by one line describing the machine.

`--quick` runs the reduced set (under 10 minutes on 2 cores); without it, the full set whose
results are recorded in docs/benchmarks.md. Each benchmark runs in its own process. A failing one
is reported while the others still run, and the exit status is then non-zero.

Usage: python benchmarks/run_all.py [--quick] [--only NAME ...] [--demo-model PATH]
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
BENCHMARKS = ("scorer", "pruning", "workflow")


def machine_line() -> dict:
    """Describe the machine, the date and the versions a reader needs to compare results."""
    import torch

    return {
        "name": "machine",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": metadata.version("transformers"),
    }


def benchmark_commands(name: str, quick: bool, demo_model: Path, demo_samples: Path) -> list[list[str]]:
    """Return the commands of one benchmark in the quick or the full set."""
    python = [sys.executable]
    if name == "scorer":
        # The random Pythia-160M-shaped model at k = 50, 200 (and 500 in the full set), S = 50.
        random_model = [*python, str(HERE / "bench_scorer.py")] + (["--quick"] if quick else ["--n-samples", "8", "--nocache-repeats", "1"])
        commands = [random_model]
        if demo_model.is_dir() and demo_samples.is_file():
            # The trained demo model on its own members, at the demo's prefix lengths and 32-token suffix.
            commands.append([
                *python, str(HERE / "bench_scorer.py"), "--model", str(demo_model), "--skip-random-model",
                "--samples", str(demo_samples), "--suffix-length", "32", "--prefix-lengths", "32", "64",
                "--n-samples", "16" if quick else "64", "--nocache-repeats", "1",
            ])
        else:
            print(f"# no trained demo model at {demo_model}: run `make demo` to benchmark it too", file=sys.stderr)
        return commands
    return [[*python, str(HERE / f"bench_{name}.py"), *(["--quick"] if quick else [])]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the reduced set")
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, default=list(BENCHMARKS), help="benchmarks to run")
    parser.add_argument(
        "--demo-model", type=Path, default=REPO / "results/models/pythia-demo",
        help="trained demo model for the scorer benchmark (skipped if absent; run `make demo` first)",
    )
    parser.add_argument(
        "--demo-samples", type=Path, default=REPO / "results/data/minipile/members.parquet",
        help="members of the demo model, scored in its benchmark",
    )
    arguments = parser.parse_args()

    print(json.dumps(machine_line()), flush=True)
    failed = []
    for name in arguments.only:
        for command in benchmark_commands(name, arguments.quick, arguments.demo_model, arguments.demo_samples):
            started = time.perf_counter()
            print(f"# {' '.join(command)}", file=sys.stderr, flush=True)
            result = subprocess.run(command, cwd=REPO)
            print(f"# {name}: exit {result.returncode} after {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
            if result.returncode != 0:
                failed.append(name)

    if failed:
        print(f"failed benchmarks: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
