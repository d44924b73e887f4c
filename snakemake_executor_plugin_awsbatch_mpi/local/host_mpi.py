"""Can this machine build and run the MPI programs of the demo and the tests? (issue 21 item 1)

The process runtime of the emulation runs MPI jobs with the host's Open MPI, and the example's
MPI rule compiles its program with `mpicc` inside the job. Having `mpicc` and `mpirun` on PATH
is not enough: Debian's `openmpi-bin` (which GROMACS or Quantum ESPRESSO pull in) ships both
without `mpi.h`, and then the demo fails deep inside a job. So the check is what the demo and
the tests really do: compile and link a two-line MPI program with the `mpicc` on PATH.

`make system-deps`, `awsbatch-mpi demo` and the tests' fixtures all use `check_mpi`; the first
two install the missing packages with apt when they run as root (`ensure_mpi`), otherwise
they say in one sentence what to install.

Standard library only, and runnable as a file (`python3 host_mpi.py --install`), so that the
Makefile can call it before anything of the package is importable.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

# What the demo and the tests need of MPI, in two lines.
PROBE_C = (
    "#include <mpi.h>\n"
    "int main(int c, char **v) { MPI_Init(&c, &v); return MPI_Finalize(); }\n"
)
APT_PACKAGES = ("openmpi-bin", "libopenmpi-dev")
_TO_INSTALL = (
    "Debian/Ubuntu: sudo apt-get install openmpi-bin libopenmpi-dev; macOS: brew install open-mpi"
)
COMPILE_TIMEOUT_SECONDS = 120


@dataclass(frozen=True)
class MpiCheck:
    """The outcome: usable, or one sentence saying what is missing and what to install."""

    problem: str = ""
    detail: str = ""  # the compiler's own output, for a log

    @property
    def ok(self) -> bool:
        return not self.problem


def _first_error(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    return (errors or lines or ["no output"])[0]


def check_mpi(path: str | None = None) -> MpiCheck:
    """Compile and link `PROBE_C` with the `mpicc` found on `path` (default: PATH)."""
    search = os.environ.get("PATH", "") if path is None else path
    mpicc, mpirun = shutil.which("mpicc", path=search), shutil.which("mpirun", path=search)
    if not mpicc or not mpirun:
        tools = (("mpicc", mpicc), ("mpirun", mpirun))
        missing = " and ".join(name for name, found in tools if not found)
        return MpiCheck(
            f"Open MPI is missing ({missing} not found on PATH): install it ({_TO_INSTALL}) "
            "and run this again."
        )
    env = {**os.environ, "PATH": search}
    with tempfile.TemporaryDirectory(prefix="awsbatch-mpi-probe-") as tmp:
        source = Path(tmp) / "probe.c"
        source.write_text(PROBE_C)
        try:
            run = subprocess.run(
                [mpicc, str(source), "-o", str(Path(tmp) / "probe")],
                capture_output=True,
                text=True,
                env=env,
                timeout=COMPILE_TIMEOUT_SECONDS,
            )
        except (OSError, subprocess.TimeoutExpired) as err:
            return MpiCheck(
                f"{mpicc} could not be run ({err}): reinstall Open MPI ({_TO_INSTALL}) and run "
                "this again."
            )
    output = run.stdout + run.stderr
    if run.returncode == 0:
        return MpiCheck(detail=output)
    if "mpi.h" in output:
        return MpiCheck(
            f"Open MPI's headers are missing ({mpicc} cannot find mpi.h; Debian's openmpi-bin "
            "has mpicc and mpirun without them): install libopenmpi-dev (Debian/Ubuntu: sudo "
            "apt-get install libopenmpi-dev; macOS: brew install open-mpi) and run this again.",
            output,
        )
    return MpiCheck(
        f"{mpicc} cannot compile and link a two-line MPI program ({_first_error(output)}): "
        f"install Open MPI with its development files ({_TO_INSTALL}) and run this again.",
        output,
    )


def install_command(path: str | None = None) -> list[str] | None:
    """apt-get's command line when this process may install packages (root + apt), else None."""
    search = os.environ.get("PATH", "") if path is None else path
    apt = shutil.which("apt-get", path=search)
    if apt is None or not hasattr(os, "geteuid") or os.geteuid() != 0:
        return None
    return [apt, "install", "-y", "-qq", *APT_PACKAGES]


def ensure_mpi(
    install: bool = True,
    path: str | None = None,
    say: Callable[[str], None] | None = None,
) -> MpiCheck:
    """`check_mpi`, and when it fails and we may, install Open MPI with apt and check again."""
    found = check_mpi(path)
    command = install_command(path) if install else None
    if found.ok or command is None:
        return found
    if say:
        say(f"{found.problem.split(':')[0]}; installing {' '.join(APT_PACKAGES)} with apt-get.")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if path is not None:
        env["PATH"] = path
    for step in ([command[0], "update", "-qq"], command):
        run = subprocess.run(step, capture_output=True, text=True, env=env)
        if run.returncode != 0:
            return MpiCheck(
                f"Installing Open MPI failed ({' '.join(step)}: {_first_error(run.stderr)}): "
                f"install it by hand ({_TO_INSTALL}) and run this again.",
                run.stdout + run.stderr,
            )
    return check_mpi(path)


def main(argv: Sequence[str] | None = None) -> int:
    """`python3 host_mpi.py [--install]`: exit 0 when MPI works, else 1 with the sentence.

    The Makefile's entry point (a terminal, not a library caller: it writes to stdout/stderr).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    found = ensure_mpi(install="--install" in args, say=lambda line: sys.stdout.write(line + "\n"))
    if not found.ok:
        sys.stderr.write(found.problem + "\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
