#!/usr/bin/env bash
# GPU check for a machine with one GPU: device, global threshold and scorer on Pythia-shaped models
# in bfloat16, and two leased jobs taking turns on the GPU. Prints one JSON line per result.
# Usage: benchmarks/gpu_check.sh [--dry-run]   (--dry-run: tiny shapes on the CPU, as CI runs it)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
python="${PYTHON:-.venv/bin/python}"
[[ -x "$python" ]] || python=python3
exec timeout 480 "$python" benchmarks/gpu_check.py "$@"
