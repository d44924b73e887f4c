"""Shared by the "any image" docker tests (issue 22): the images they need, the runtime
copied out of its image, and the skip-or-fail rule of tests/local/test_docker_runtime.py
(``AWSBATCH_MPI_REQUIRE_DOCKER=1``, set by containers/ci.sh, turns a skip into a failure)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from snakemake_executor_plugin_awsbatch_mpi.core.anyimage import RUNTIME_ROOT
from snakemake_executor_plugin_awsbatch_mpi.local.docker_runner import docker_problem
from snakemake_executor_plugin_awsbatch_mpi.local.images import (
    DEFAULT_JOB_IMAGE,
    DEFAULT_MPI_IMAGE,
    DEFAULT_RUNTIME_IMAGE,
    image_present,
)

REQUIRE = os.environ.get("AWSBATCH_MPI_REQUIRE_DOCKER") == "1"
ROOT = Path(__file__).resolve().parents[2]
BUSYBOX = "awsbatch-anyimage-busybox:1"
OPENMPI = "awsbatch-anyimage-openmpi:1"
NOSHELL = "awsbatch-anyimage-noshell:1"


def unavailable() -> str | None:
    """Why these tests cannot run here (a sentence), or None. Builds the two test images
    (seconds) when only they are missing."""
    problem = docker_problem()
    if problem is not None:
        return problem
    needed = (DEFAULT_JOB_IMAGE, DEFAULT_MPI_IMAGE, DEFAULT_RUNTIME_IMAGE)
    missing = [tag for tag in needed if not image_present(tag)]
    if missing:
        return f"The images {', '.join(missing)} are missing: build them with `make images`."
    if not all(image_present(tag) for tag in (BUSYBOX, OPENMPI, NOSHELL)):
        built = subprocess.run(
            [str(ROOT / "containers" / "test-images.sh")], capture_output=True, text=True
        )
        if built.returncode != 0:
            return f"containers/test-images.sh failed: {built.stderr.strip()}"
    return None


def require_docker() -> None:
    reason = unavailable()
    if reason is None:
        return
    if REQUIRE:
        pytest.fail(f"AWSBATCH_MPI_REQUIRE_DOCKER=1 but Docker cannot be used: {reason}")
    pytest.skip(reason)


def copy_runtime_out(target: Path) -> Path:
    """The runtime tree of the runtime image, copied to `target` (a host directory that is
    then mounted at RUNTIME_MOUNT); returns the version directory."""
    target.mkdir(parents=True, exist_ok=True)
    target.chmod(0o755)  # jobs run as any user; pytest makes 0700 directories
    subprocess.run(
        ["docker", "run", "--rm", "--user", "0", "--network", "none", "-v", f"{target}:/out",
         DEFAULT_RUNTIME_IMAGE, "cp", "-a", RUNTIME_ROOT, "/out/"],
        check=True,
        capture_output=True,
    )
    return target / Path(RUNTIME_ROOT).name
