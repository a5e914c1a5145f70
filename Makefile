# Shipyard: `make demo` runs the fraud story, `make test` runs the suite. Both set up .venv first.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lint check bench clean

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "Shipyard needs $(PYTHON) on PATH (or run: make PYTHON=/path/to/python3.11 ...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)

# Reinstall only when the declared or pinned dependencies change.
$(STAMP): $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/shipyard demo

# Two pytest workers, one per core of the 2-core target machine; a file's tests stay on one
# worker, so module fixtures (a Spark session, a trained model) are built once per file.
PYTEST_PARALLEL ?= -n 2 --dist loadfile

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_PARALLEL)

test-fast: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_PARALLEL) -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

check: lint
	$(BIN)/mypy
	$(BIN)/python -m pytest $(PYTEST_PARALLEL)

bench: $(STAMP)
	$(BIN)/python bench/demo.py
	$(BIN)/python bench/generate.py
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/validate.py
	$(BIN)/python bench/registry.py
	$(BIN)/python bench/monitor.py
	$(BIN)/python bench/serve.py

clean:
	rm -rf $(VENV) .bench-venv .shipyard .pytest_cache .mypy_cache .ruff_cache
