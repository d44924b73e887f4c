"""The one-line reasons found in MPI launchers' failure reports."""

from __future__ import annotations

import pytest

from snakemake_executor_plugin_awsbatch_mpi.mpi.diagnose import FailureScanner, scan

OPENMPI4_ABORT = """\
rank 3: cannot converge, giving up
--------------------------------------------------------------------------
MPI_ABORT was invoked on rank 3 in communicator MPI_COMM_WORLD
with errorcode 7.

NOTE: invoking MPI_ABORT causes Open MPI to kill all MPI processes.
You may or may not see output from other processes, depending on
exactly when Open MPI kills them.
--------------------------------------------------------------------------
[host:01234] 1 more process has sent help message help-mpi-api.txt / mpi-abort
"""

OPENMPI5_ABORT = """\
--------------------------------------------------------------------------
MPI_ABORT was invoked on rank 2 in communicator MPI_COMM_WORLD
  Proc: [[51394,1],2]
  Errorcode: 5

NOTE: invoking MPI_ABORT causes Open MPI to kill all MPI processes.
--------------------------------------------------------------------------
"""

OPENMPI4_SIGNAL = """\
--------------------------------------------------------------------------
Primary job  terminated normally, but 1 process returned
a non-zero exit code. Per user-direction, the job has been aborted.
--------------------------------------------------------------------------
--------------------------------------------------------------------------
mpirun noticed that process rank 1 with PID 0 on node 10.0.1.12 exited on signal 11 \
(Segmentation fault).
--------------------------------------------------------------------------
"""

OPENMPI4_EXIT = """\
--------------------------------------------------------------------------
mpirun detected that one or more processes exited with non-zero status, thus causing
the job to be terminated. The first process to do so was:

  Process name: [[12345,1],4]
  Exit code:    3
--------------------------------------------------------------------------
"""

PRTE_EXIT = """\
--------------------------------------------------------------------------
prterun detected that one or more processes exited with non-zero status,
thus causing the job to be terminated. The first process to do so was:

   Process name: [prterun-ip-10-0-1-5-2211@1,6]
   Exit code:    2
--------------------------------------------------------------------------
"""

MPICH_ABORT = "application called MPI_Abort(MPI_COMM_WORLD, 9) - process 5\n"

HYDRA_SIGNAL = """\
===================================================================================
=   BAD TERMINATION OF ONE OF YOUR APPLICATION PROCESSES
=   RANK 2 PID 4711 RUNNING AT ip-10-0-1-7
=   KILLED BY SIGNAL: 9 (Killed)
===================================================================================
"""

HYDRA_EXIT = """\
===================================================================================
=   BAD TERMINATION OF ONE OF YOUR APPLICATION PROCESSES
=   RANK 0 PID 99 RUNNING AT node-a
=   EXIT CODE: 4
=   CLEANING UP REMAINING PROCESSES
===================================================================================
"""

ORTE_DAEMONS = """\
--------------------------------------------------------------------------
ORTE was unable to reliably start one or more daemons.
This usually is caused by:
"""


@pytest.mark.parametrize(
    ("report", "reason"),
    [
        (OPENMPI4_ABORT,
         "MPI_ABORT was invoked on rank 3 in communicator MPI_COMM_WORLD with errorcode 7"),
        (OPENMPI5_ABORT,
         "MPI_ABORT was invoked on rank 2 in communicator MPI_COMM_WORLD with errorcode 5"),
        (OPENMPI4_SIGNAL, "rank 1 on node 10.0.1.12 was killed by signal 11 (Segmentation fault)"),
        (OPENMPI4_EXIT, "rank 4 exited with code 3"),
        (PRTE_EXIT, "rank 6 exited with code 2"),
        (MPICH_ABORT, "MPI_Abort was called on rank 5 in communicator MPI_COMM_WORLD "
                      "with errorcode 9"),
        (HYDRA_SIGNAL, "rank 2 on ip-10-0-1-7 was killed by signal 9 (Killed)"),
        (HYDRA_EXIT, "rank 0 on node-a exited with code 4"),
        (ORTE_DAEMONS, "the launcher could not start its daemons on the other nodes"),
    ],
)
def test_reports_are_summed_up_in_one_line(report, reason):
    assert scan(report.splitlines()) == reason


def test_ordinary_output_has_no_reason():
    lines = ["rank 0 of 4 says hello", "errorcode 7 in my own output", "Exit code: 3", ""]
    assert scan(lines) is None


def test_the_first_report_wins():
    assert scan((OPENMPI4_ABORT + OPENMPI4_EXIT).splitlines()).startswith("MPI_ABORT")


def test_a_report_broken_by_unrelated_lines_far_apart_is_not_guessed():
    lines = ["MPI_ABORT was invoked on rank 3 in communicator MPI_COMM_WORLD"]
    lines += [f"noise {i}" for i in range(10)] + ["with errorcode 7."]
    assert scan(lines) is None


def test_huge_lines_are_cut_not_kept():
    scanner = FailureScanner()
    scanner.feed("x" * 1_000_000)
    assert max(len(line) for line in scanner._recent) <= 400
    for line in OPENMPI4_ABORT.splitlines():
        scanner.feed(line)
    assert scanner.reason is not None and "rank 3" in scanner.reason
