# Quick start: `make demo` runs the embedded demo end to end, `make test` runs the test suite.
# Both create .venv from the pinned requirements in pyproject.toml on first use, then reuse it.

PYTHON ?= python3
VENV ?= .venv
CORES ?= 2
BIN := $(VENV)/bin
STAMP := $(VENV)/.memprune-installed

.PHONY: demo test test-fast lint report bench bench-quick clean-results

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# The whole default grid on the embedded corpus: train, extract, prune, score, tables, figures.
demo: $(STAMP)
	$(BIN)/snakemake --cores $(CORES)

# Every test, the slow end-to-end workflow and Slurm runs included.
test: $(STAMP)
	$(BIN)/python -m pytest

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
