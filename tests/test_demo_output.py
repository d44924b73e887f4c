"""What `awsbatch-mpi demo` shows of a run: the failure whole, and the report's path."""

from __future__ import annotations

from pathlib import Path

from snakemake_executor_plugin_awsbatch_mpi.demo import failure_summary, report_of

# Snakemake's output of a failed run through the plugin (trimmed; issue 21 item 2).
FAILED_RUN = """\
rule gc_mpi:
    log: s3://snakemake-local/demo/logs/gc_mpi.log (send to storage)
Error in rule gc_mpi:
    message: The command of rule 'gc_mpi' exited with code 1 (AWS Batch job 9f). The log is saved in .snakemake/awsbatch-mpi/logs/gc_mpi-9f-node0.log (last lines below).
The rule's own log s3://snakemake-local/demo/logs/gc_mpi.log (all of it):
    mpi_gc.c:10:10: fatal error: mpi.h: No such file or directory
    compilation terminated.
AWS Batch reported for rule 'gc_mpi' (its exit code is that of Snakemake inside the job): exit code 1.
Last lines of the log of node0:
    Error in rule gc_mpi:
        message: None
    WorkflowError:
    At least one job did not complete successfully.
Logfile s3://snakemake-local/demo/logs/gc_mpi.log (send to storage) not found.
Run 55ca5d4f12e34ae9: 9 job(s), 1 failed; wall time 15.4s. Report: .snakemake/awsbatch-mpi/report-55ca5d4f12e34ae9.html
WorkflowError:
At least one job did not complete successfully.
""".splitlines()  # noqa: E501


def test_failure_summary_is_the_headline_and_the_rules_own_log():
    assert failure_summary(FAILED_RUN) == [
        "Error in rule gc_mpi:",
        "  The command of rule 'gc_mpi' exited with code 1 (AWS Batch job 9f). The log is saved "
        "in .snakemake/awsbatch-mpi/logs/gc_mpi-9f-node0.log (last lines below).",
        "  The rule's own log s3://snakemake-local/demo/logs/gc_mpi.log (all of it):",
        "      mpi_gc.c:10:10: fatal error: mpi.h: No such file or directory",
        "      compilation terminated.",
    ]


def test_report_path_is_read_from_the_executors_last_line(tmp_path: Path):
    assert report_of(FAILED_RUN, tmp_path) == (
        tmp_path / ".snakemake/awsbatch-mpi/report-55ca5d4f12e34ae9.html"
    )
    assert report_of(["Nothing to be done (all requested files are present)."], tmp_path) is None


def test_only_snakemakes_top_level_progress_is_echoed():
    from snakemake_executor_plugin_awsbatch_mpi.demo import PROGRESS

    echoed = [line for line in FAILED_RUN if PROGRESS.match(line)]
    assert echoed == ["rule gc_mpi:"]  # not the job log's "Error in rule" or "WorkflowError:"
    assert PROGRESS.match("5 of 10 steps (50%) done")
    assert PROGRESS.match("Exiting because a job execution failed. Look above for error messages")
