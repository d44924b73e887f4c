from snakemake_executor_plugin_awsbatch_mpi.status import (
    Outcome,
    console_url,
    failure,
    failure_message,
    outcome,
)


def test_outcome():
    assert outcome({"status": "RUNNABLE"}) is Outcome.RUNNING
    assert outcome({"status": "SUCCEEDED"}) is Outcome.SUCCEEDED
    assert outcome({"status": "FAILED"}) is Outcome.FAILED


def test_failure_falls_back_to_last_attempt():
    desc = {
        "jobId": "j1",
        "status": "FAILED",
        "statusReason": "Essential container in task exited",
        "container": {"logStreamName": "def/default/j1"},
        "attempts": [{"container": {"exitCode": 3, "reason": "boom"}}],
    }
    fail = failure(desc)
    assert (fail.exit_code, fail.container_reason, fail.log_stream) == (3, "boom", "def/default/j1")
    msg = failure_message("b", fail, "eu-west-1", "/aws/batch/job")
    assert "j1" in msg and "rule 'b'" in msg and "exit code 3" in msg
    assert console_url("eu-west-1", "j1") in msg
    assert "/aws/batch/job/def/default/j1" in msg


def test_failure_without_exit_code_or_stream():
    fail = failure({"jobId": "j2", "status": "FAILED"})
    assert fail.exit_code is None and fail.log_stream is None
    assert "Batch gave no reason" in failure_message("r", fail, "us-east-1", "/g")


def test_oom_hint():
    fail = failure(
        {"jobId": "j", "attempts": [{"container": {"reason": "OutOfMemoryError: killed"}}]}
    )
    assert "raise mem_mb" in failure_message("r", fail, "us-east-1", "/g")


def test_command_exit_code_from_snakemake_log():
    from snakemake_executor_plugin_awsbatch_mpi.status import command_exit_code

    lines = ["x", "Command 'set -euo pipefail; exit 3' returned non-zero exit status 3.", "y"]
    assert command_exit_code(lines) == 3
    assert command_exit_code(["nothing"]) is None


def test_mpi_failure_reason_from_the_node_agents_last_line():
    from snakemake_executor_plugin_awsbatch_mpi.status import mpi_failure_reason

    lines = [
        "[awsbatch-mpi node 0 launch] 15:05:03.908 mpirun exited with 7: MPI_ABORT was ...",
        "Elapsed time: 0:00:01.967939",
        "[awsbatch-mpi node 0] 15:05:04.312 job command exited with 1 after mpirun failed "
        "with 7 (MPI_ABORT was invoked on rank 3 in communicator MPI_COMM_WORLD with "
        "errorcode 7): exiting with 7",
    ]
    assert mpi_failure_reason(lines) == (
        "MPI_ABORT was invoked on rank 3 in communicator MPI_COMM_WORLD with errorcode 7"
    )
    # no report recognised: the agent's line has no reason, and none is made up
    assert mpi_failure_reason([
        "[awsbatch-mpi node 0] 15:05:04.312 job command exited with 1 after mpirun failed "
        "with 7: exiting with 7"
    ]) is None
