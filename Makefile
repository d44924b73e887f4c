# Quick start: `make demo` runs the example workflow on the local AWS emulation,
# `make test` runs the test suite. Both create .venv and install everything first.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: install system-deps demo test lint bench images clean

install: $(VENV)/.installed system-deps

# Open MPI runs the example's multi-node MPI rule on the emulated nodes.
system-deps:
	@command -v mpicc >/dev/null && command -v mpirun >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	      apt-get install -y -qq openmpi-bin libopenmpi-dev >/dev/null; \
	  else \
	    echo "Open MPI is missing: install it (Debian/Ubuntu: sudo apt-get install" \
	         "openmpi-bin libopenmpi-dev; macOS: brew install open-mpi) and run make again."; \
	    exit 1; \
	  fi; }

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

# The job and MPI images of containers/ (the base is pulled, or built from Debian packages
# when no registry answers: see containers/build-base.sh). Used by --runtime docker.
images:
	containers/build-base.sh
	DOCKER_BUILDKIT=0 docker build -f containers/Dockerfile -t snakemake-awsbatch-mpi:0.1.0 .
	DOCKER_BUILDKIT=0 docker build -f containers/Dockerfile.mpi -t snakemake-awsbatch-mpi:0.1.0-mpi .

clean:
	rm -rf $(VENV) awsbatch-mpi-demo .pytest_cache .ruff_cache
