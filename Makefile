# Quick start: `make demo` runs the example workflow on the local AWS emulation,
# `make test` runs the test suite. Both create .venv and install everything first.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: install demo test lint bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

demo: install
	$(BIN)/awsbatch-mpi demo

lint: install
	$(BIN)/ruff check .

test: lint
	$(BIN)/pytest -q

bench: install
	$(BIN)/python benchmarks/fanout.py

clean:
	rm -rf $(VENV) awsbatch-mpi-demo .pytest_cache .ruff_cache
