# Quick start: `make demo` runs the embedded demo end to end, `make test` runs the test suite.
# Both create .venv from the pinned requirements in pyproject.toml on first use, then reuse it.

PYTHON ?= python3
VENV ?= .venv
CORES ?= 2
BIN := $(VENV)/bin
STAMP := $(VENV)/.memprune-installed

.PHONY: demo test test-fast slurm-up lint report bench bench-quick clean-results

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# The whole default grid on the embedded corpus: train, extract, prune, score, tables, figures.
demo: $(STAMP)
	$(BIN)/snakemake --cores $(CORES)

# Every test, the slow end-to-end workflow and Slurm runs included. The Slurm tests need the one-node
# test cluster, which slurm-up starts when run as root; elsewhere they fail with what to do.
test: $(STAMP) slurm-up
	$(BIN)/python -m pytest

slurm-up:
	@if [ "$$(id -u)" = 0 ]; then bash .ci/start-slurm || echo "the Slurm test cluster did not start; the Slurm tests will fail"; \
	else echo "not root: start the test cluster with 'sudo .ci/start-slurm' for the Slurm tests"; fi

# Unit tests only (no end-to-end runs).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m 'not slow'

lint: $(STAMP)
	$(BIN)/snakemake --lint

report: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) --report report.html

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

bench-quick: $(STAMP)
	$(BIN)/python benchmarks/run_all.py --quick

clean-results:
	rm -rf results/* .snakemake
