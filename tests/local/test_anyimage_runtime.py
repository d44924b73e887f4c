"""The self-contained runtime (containers/Dockerfile.runtime) runs Snakemake in an image with
no Python, no Snakemake and no C library: Debian's static busybox (issue 22, step 1).

Needs Docker and the images of `make images` plus the runtime image; the two test images
come from containers/test-images.sh (built here when missing, in seconds)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from snakemake_executor_plugin_awsbatch_mpi.core.anyimage import (
    RUNTIME_MOUNT,
    RUNTIME_PYTHON,
    RUNTIME_VERSION,
)

from ._anyimage import BUSYBOX, OPENMPI, ROOT, copy_runtime_out, require_docker

pytestmark = pytest.mark.integration

SNAKEFILE = """
rule all:
    input: "shell.txt", "script.txt"
rule shell_rule:
    output: "shell.txt"
    shell: "echo hello | tr a-z A-Z > {output}; echo ld=${{LD_LIBRARY_PATH:-unset}} >> {output}"
rule script_rule:
    input: "shell.txt"
    output: "script.txt"
    script: "child.py"
"""
SCRIPT = """
import subprocess, sys
text = open(snakemake.input[0]).read().lower()
child = subprocess.run([sys.executable, "-c", "print('child', 6 * 7)"],
                       capture_output=True, text=True, check=True).stdout
open(snakemake.output[0], "w").write(text + child + sys.executable + "\\n")
"""


@pytest.fixture(scope="module")
def runtime_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_docker()
    mount = tmp_path_factory.mktemp("runtime")
    copy_runtime_out(mount)
    return mount


def _run(image: str, mount: Path, workdir: Path, *command: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["docker", "run", "--rm", "--network", "none",
         "-v", f"{mount}:{RUNTIME_MOUNT}:ro", "-v", f"{workdir}:/work", image, *command],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("image", [BUSYBOX, OPENMPI])
def test_the_test_images_have_no_python(image: str) -> None:
    require_docker()
    proc = subprocess.run(
        ["docker", "run", "--rm", "--network", "none", image, "/bin/sh", "-c",
         "command -v python3 || command -v python || ls /usr/lib/python3* 2>/dev/null"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0 and not proc.stdout.strip(), proc.stdout


def test_snakemake_runs_from_the_runtime_in_busybox(runtime_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "Snakefile").write_text(SNAKEFILE)
    (tmp_path / "child.py").write_text(SCRIPT)
    tmp_path.chmod(0o777)
    proc = _run(BUSYBOX, runtime_dir, tmp_path,
                RUNTIME_PYTHON, "-m", "snakemake", "--cores", "1", "--scheduler", "greedy")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "shell.txt").read_text() == "HELLO\nld=unset\n"
    # The script ran with the runtime's Python, and so did its child (sys.executable works).
    assert (tmp_path / "script.txt").read_text() == f"hello\nld=unset\nchild 42\n{RUNTIME_PYTHON}\n"


def test_without_the_bundled_ilp_solver_snakemake_schedules_greedily(
    runtime_dir: Path, tmp_path: Path
) -> None:
    """The ILP solver PuLP bundles is a program that needs the image's loader, so the runtime
    leaves it out (and job commands ask for --scheduler greedy anyway): Snakemake falls back
    instead of failing to start it."""
    assert not list((runtime_dir / RUNTIME_VERSION).rglob("solverdir"))
    (tmp_path / "Snakefile").write_text(SNAKEFILE)
    (tmp_path / "child.py").write_text(SCRIPT)
    tmp_path.chmod(0o777)
    proc = _run(BUSYBOX, runtime_dir, tmp_path, RUNTIME_PYTHON, "-m", "snakemake", "--cores", "1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Falling back to greedy scheduler" in proc.stderr


def test_runtime_describes_itself(runtime_dir: Path) -> None:
    info = json.loads((runtime_dir / RUNTIME_VERSION / "runtime.json").read_text())
    assert info["version"] == RUNTIME_VERSION
    assert info["python"].startswith("3.11")
    assert "libc.so.6" in info["libraries"] and info["loader"].startswith("ld-linux")
    # Size target (docs/further.md): the runtime stays under 250 MB.
    assert 50e6 < info["bytes"] < 250e6


def test_runtime_version_is_the_plugin_version() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert f'version = "{RUNTIME_VERSION}"' in pyproject
    dockerfile = (ROOT / "containers" / "Dockerfile.runtime").read_text()
    assert f"ARG RUNTIME_ROOT={RUNTIME_MOUNT}/{RUNTIME_VERSION}\n" in dockerfile
