"""The host MPI check of `make`, `awsbatch-mpi demo` and the tests' fixtures (issue 21 item 1).

Open MPI is not removed from this machine (other tests need it): a directory of fake tools on
PATH plays a machine with Debian's openmpi-bin but without libopenmpi-dev, and a fake apt-get
plays the installation.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from snakemake_executor_plugin_awsbatch_mpi.local import host_mpi
from snakemake_executor_plugin_awsbatch_mpi.local.host_mpi import check_mpi, ensure_mpi

REPO = Path(__file__).resolve().parents[2]
# What Debian's mpicc says without libopenmpi-dev (issue 21).
NO_HEADER = "mpi_gc.c:10:10: fatal error: mpi.h: No such file or directory"
HEADERS_MISSING = (
    "Open MPI's headers are missing ({mpicc} cannot find mpi.h; Debian's openmpi-bin has mpicc "
    "and mpirun without them): install libopenmpi-dev (Debian/Ubuntu: sudo apt-get install "
    "libopenmpi-dev; macOS: brew install open-mpi) and run this again."
)


def tool(directory: Path, name: str, script: str) -> Path:
    path = directory / name
    path.write_text("#!/bin/sh\n" + script + "\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def runtime_only(tmp_path) -> Path:
    """A PATH with openmpi-bin's mpicc and mpirun, without the headers."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool(bin_dir, "mpicc", f"echo '{NO_HEADER}' >&2; echo 'compilation terminated.' >&2; exit 1")
    tool(bin_dir, "mpirun", "exit 0")
    return bin_dir


def test_runtime_without_headers_is_named_in_one_sentence(runtime_only):
    found = check_mpi(str(runtime_only))
    assert not found.ok
    assert found.problem == HEADERS_MISSING.format(mpicc=runtime_only / "mpicc")
    assert NO_HEADER in found.detail


def test_missing_open_mpi_is_named(tmp_path):
    found = check_mpi(str(tmp_path))
    assert found.problem == (
        "Open MPI is missing (mpicc and mpirun not found on PATH): install it (Debian/Ubuntu: "
        "sudo apt-get install openmpi-bin libopenmpi-dev; macOS: brew install open-mpi) and run "
        "this again."
    )


def test_other_compile_failures_quote_the_compiler(tmp_path):
    tool(tmp_path, "mpicc", "echo 'ld: cannot find -lmpi' >&2; echo 'collect2: error: ld' >&2; "
         "exit 1")
    tool(tmp_path, "mpirun", "exit 0")
    found = check_mpi(str(tmp_path))
    assert found.problem.startswith(
        f"{tmp_path / 'mpicc'} cannot compile and link a two-line MPI program "
        "(collect2: error: ld): install Open MPI with its development files"
    )


def test_the_real_mpicc_passes():
    """This machine has Open MPI with headers (CI installs it): the probe compiles."""
    if os.environ.get("CI") != "true" and not shutil.which("mpicc"):
        pytest.skip("no mpicc on this machine")
    assert check_mpi().ok


def test_as_root_with_apt_it_installs_and_checks_again(runtime_only, tmp_path, monkeypatch):
    monkeypatch.setattr(host_mpi.os, "geteuid", lambda: 0)
    calls = tmp_path / "apt-calls"
    # The fake apt-get "installs" libopenmpi-dev: afterwards mpicc compiles.
    tool(runtime_only, "apt-get", f'echo "$@" >> {calls}; '
         f'[ "$1" = install ] && printf "#!/bin/sh\\nexit 0\\n" > {runtime_only}/mpicc; exit 0')
    said = []
    found = ensure_mpi(path=str(runtime_only), say=said.append)
    assert found.ok, found.problem
    assert calls.read_text().splitlines() == [
        "update -qq", "install -y -qq openmpi-bin libopenmpi-dev"
    ]
    assert said == [
        "Open MPI's headers are missing ({} cannot find mpi.h; Debian's openmpi-bin has mpicc "
        "and mpirun without them); installing openmpi-bin libopenmpi-dev with apt-get.".format(
            runtime_only / "mpicc")
    ]


def test_without_root_nothing_is_installed(runtime_only, tmp_path, monkeypatch):
    monkeypatch.setattr(host_mpi.os, "geteuid", lambda: 1000)
    tool(runtime_only, "apt-get", f"touch {tmp_path / 'ran'}")
    found = ensure_mpi(path=str(runtime_only))
    assert not found.ok and not (tmp_path / "ran").exists()
    assert "install libopenmpi-dev" in found.problem


def test_failed_installation_says_to_install_by_hand(runtime_only, monkeypatch):
    monkeypatch.setattr(host_mpi.os, "geteuid", lambda: 0)
    tool(runtime_only, "apt-get", "echo 'E: Could not open lock file' >&2; exit 100")
    found = ensure_mpi(path=str(runtime_only))
    assert found.problem.startswith(
        f"Installing Open MPI failed ({runtime_only / 'apt-get'} update -qq: E: Could not open "
        "lock file): install it by hand"
    )


def test_make_system_deps_stops_at_once_with_the_sentence(runtime_only):
    """`make system-deps` as a user without apt: the one sentence, exit status non-zero."""
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed (.ci/run installs it)")
    run = subprocess.run(
        [make, "-s", "-C", str(REPO), "system-deps", f"PYTHON={sys.executable}"],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "PATH": str(runtime_only)},  # no apt-get: nothing is installed
    )
    assert run.returncode != 0
    assert HEADERS_MISSING.format(mpicc=runtime_only / "mpicc") in run.stderr


def test_tests_that_need_mpi_skip_with_the_reason_and_fail_under_ci(runtime_only, monkeypatch):
    from tests.conftest import require_mpi

    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="Open MPI's headers are missing"):
        require_mpi(str(runtime_only))
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true and MPI is not usable: Open MPI's"):
        require_mpi(str(runtime_only))


def test_demo_stops_at_once_with_the_sentence(runtime_only, tmp_path):
    """`awsbatch-mpi demo` without usable MPI (and no apt-get): one sentence, nothing run."""
    run = subprocess.run(
        [sys.executable, "-m", "snakemake_executor_plugin_awsbatch_mpi.cli", "demo",
         "--workdir", str(tmp_path / "demo")],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "PATH": str(runtime_only)},
    )
    assert run.returncode == 1
    assert run.stdout.strip() == "[demo] " + HEADERS_MISSING.format(
        mpicc=runtime_only / "mpicc")
    assert not (tmp_path / "demo").exists()
