# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_OUT ?= cache/demo

.PHONY: venv demo test lint lint-imports pytest bench clean

venv: $(STAMP)

# torch first (CPU build from this machine's disk), then the package with every extra.
# Keeping torch==2.13.0 on the second line stops pip from pulling a CUDA build.
$(STAMP): pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[all]" torch==2.13.0
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/mimicry demo --out $(DEMO_OUT)

lint: $(STAMP)
	$(BIN)/ruff check $(wildcard src probes tests benchmarks experiments)

# the layering contracts in pyproject ([tool.importlinter]): mimicry never imports probes or
# experiments, probes never import experiments, no cycles among the task modules
lint-imports: $(STAMP)
	$(BIN)/lint-imports --no-cache

pytest: $(STAMP)
	OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/python -m pytest -q -n auto tests || test $$? -eq 5

test: lint lint-imports pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/capture.py
	$(BIN)/python benchmarks/probes.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
