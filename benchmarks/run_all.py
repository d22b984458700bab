"""Run every benchmark and print its JSON lines, preceded by one line describing the machine.

`--quick` runs the reduced set (under 10 minutes on 2 cores); without it, the full set whose
results are recorded in docs/benchmarks.md. Each benchmark runs in its own process; a failing one
is reported and the others still run, and the exit status is non-zero if any failed.

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


def benchmark_command(name: str, quick: bool, demo_model: Path | None) -> list[str]:
    command = [sys.executable, str(HERE / f"bench_{name}.py")]
    if quick:
        command.append("--quick")
    if name == "scorer" and demo_model is not None and demo_model.is_dir():
        command += ["--model", str(demo_model)]
    return command


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the reduced set")
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, default=list(BENCHMARKS), help="benchmarks to run")
    parser.add_argument(
        "--demo-model", type=Path, default=REPO / "results/models/pythia-demo",
        help="trained demo model for the scorer benchmark (skipped if absent; run `make demo` first)",
    )
    arguments = parser.parse_args()

    print(json.dumps(machine_line()), flush=True)
    failed = []
    for name in arguments.only:
        command = benchmark_command(name, arguments.quick, arguments.demo_model)
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
