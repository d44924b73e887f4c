# Quick start: `make demo` runs the example workflow on the local AWS emulation,
# `make test` runs the whole test suite (about 14 minutes on 2 cores), `make test-unit` the
# fast unit tests only (about a minute). All create .venv and install everything first,
# at the exact versions of constraints.txt.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: install system-deps demo test test-unit lint bench images clean

install: $(VENV)/.installed system-deps

# Open MPI runs the example's multi-node MPI rule on the emulated nodes. The check compiles
# and links a two-line MPI program (mpicc and mpirun alone are not enough: Debian's openmpi-bin
# has them without mpi.h); as root with apt it installs what is missing, otherwise it says in
# one sentence what to install.
system-deps:
	@$(PYTHON) snakemake_executor_plugin_awsbatch_mpi/local/host_mpi.py --install

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[test]"
	touch $@

demo: install
	$(BIN)/awsbatch-mpi demo

lint: install
	$(BIN)/ruff check .

# One line per test with the share done, so a 12-minute run shows where it is.
test: lint
	$(BIN)/pytest -v --durations=10

# Pure functions, moto-backed API shapes and plain local Snakemake runs: no emulated Batch
# jobs, no MPI nodes.
UNIT_TESTS = -m "not integration" --ignore=tests/integration --ignore=tests/local \
	--ignore=tests/mpi/test_nodes.py --ignore=tests/mpi/test_node_loss.py
test-unit: lint
	$(BIN)/pytest -v $(UNIT_TESTS)

bench: install
	$(BIN)/python benchmarks/fanout.py

# The job, MPI and runtime images of containers/ (the base is pulled, or built from Debian
# packages when no registry answers: see containers/build-base.sh). Used by --runtime docker.
# The example application image is built on the MPI image from its own small context (~6 s).
images:
	containers/build-base.sh
	DOCKER_BUILDKIT=0 docker build -f containers/Dockerfile -t snakemake-awsbatch-mpi:0.1.0 .
	DOCKER_BUILDKIT=0 docker build -f containers/Dockerfile.mpi -t snakemake-awsbatch-mpi:0.1.0-mpi .
	DOCKER_BUILDKIT=0 docker build -t snakemake-awsbatch-mpi-example:0.1.0 containers/example-app
	DOCKER_BUILDKIT=0 docker build -f containers/Dockerfile.runtime -t snakemake-awsbatch-mpi:0.1.0-runtime .

clean:
	rm -rf $(VENV) awsbatch-mpi-demo .pytest_cache .ruff_cache
