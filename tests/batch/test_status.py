from snakemake_executor_plugin_awsbatch_mpi.batch.status import (
    Failure,
    Outcome,
    console_url,
    failure,
    failure_message,
    lost_to_spot,
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
    from snakemake_executor_plugin_awsbatch_mpi.batch.status import command_exit_code

    lines = ["x", "Command 'set -euo pipefail; exit 3' returned non-zero exit status 3.", "y"]
    assert command_exit_code(lines) == 3
    assert command_exit_code(["nothing"]) is None


def test_mpi_failure_reason_from_the_node_agents_last_line():
    from snakemake_executor_plugin_awsbatch_mpi.batch.status import mpi_failure_reason

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


# -- attempts: only Batch's own retries are reported ---------------------------------------

def _attempt(stopped=True, reason=None, exit_code=None):
    attempt = {"container": {}, "startedAt": 1}
    if stopped:
        attempt["stoppedAt"] = 2
    if reason:
        attempt["statusReason"] = reason
    if exit_code is not None:
        attempt["container"]["exitCode"] = exit_code
    return attempt


def test_a_job_that_succeeded_first_time_was_not_retried():
    from snakemake_executor_plugin_awsbatch_mpi.batch.status import finished_attempts

    # As DescribeJobs shows it on AWS: the one (successful) attempt is listed.
    desc = {"status": "SUCCEEDED", "attempts": [_attempt(exit_code=0)]}
    assert finished_attempts(desc) == []
    # ... and while the attempt is ending, before the status moves on
    assert finished_attempts({"status": "RUNNING", "attempts": [_attempt(exit_code=0)]}) == []


def test_retried_attempts_are_those_batch_followed_with_another():
    from snakemake_executor_plugin_awsbatch_mpi.batch.status import finished_attempts

    reclaimed = _attempt(reason="Host EC2 (instance i-1) terminated.")
    # queued again after the reclaim
    assert finished_attempts({"status": "RUNNABLE", "attempts": [reclaimed]}) == [reclaimed]
    # the second attempt is running
    running = {"status": "RUNNING", "attempts": [reclaimed, _attempt(stopped=False)]}
    assert finished_attempts(running) == [reclaimed]
    # finished either way: the final attempt is the outcome, not a retry
    for status in ("SUCCEEDED", "FAILED"):
        done = {"status": status, "attempts": [reclaimed, _attempt(exit_code=0)]}
        assert finished_attempts(done) == [reclaimed]


# -- failure messages ------------------------------------------------------------------------

def _failed(reason=None, attempt_reason=None, container_reason=None, exit_code=None, **extra):
    attempt = _attempt(reason=attempt_reason, exit_code=exit_code)
    if container_reason:
        attempt["container"]["reason"] = container_reason
    desc = {
        "jobId": "j9",
        "status": "FAILED",
        "attempts": [attempt],
        "container": {
            "logStreamName": "def/default/j9",
            "resourceRequirements": [{"type": "MEMORY", "value": "2048"}],
        },
        **extra,
    }
    if reason:
        desc["statusReason"] = reason
    return failure(desc)


def test_exit_code_137_is_told_apart_by_batchs_reasons():
    from snakemake_executor_plugin_awsbatch_mpi.batch.status import Cause

    timeout = _failed("Job attempt duration exceeded timeout", exit_code=137,
                      timeout={"attemptDurationSeconds": 600})
    oom = _failed("Essential container in task exited", exit_code=137,
                  container_reason="OutOfMemoryError: Container killed due to memory usage")
    spot = _failed("Host EC2 (instance i-0abc) terminated.",
                   attempt_reason="Host EC2 (instance i-0abc) terminated.")
    killed = _failed("Essential container in task exited", exit_code=137)
    assert [f.cause for f in (timeout, oom, spot, killed)] == [
        Cause.TIMEOUT, Cause.OUT_OF_MEMORY, Cause.SPOT_RECLAIM, Cause.KILLED,
    ]
    messages = {
        name: failure_message("r", f, "us-east-1", "/g")
        for name, f in {"timeout": timeout, "oom": oom, "spot": spot, "killed": killed}.items()
    }
    assert [name for name, m in messages.items() if "raise mem_mb" in m.lower()] == ["oom"]
    assert "the 2048 MiB it requested" in messages["oom"]
    assert "timeout of 600 s" in messages["timeout"] and "runtime" in messages["timeout"]
    assert "Spot reclaim" in messages["spot"] and "on-demand queue" in messages["spot"]
    assert "SIGKILL" in messages["killed"] and "did not say why" in messages["killed"]
    # the rule's own failure has no cause of Batch's making
    assert _failed("Essential container in task exited", exit_code=1).cause is None


def test_headline_leads_with_the_rules_exit_code_and_the_saved_log():
    from snakemake_executor_plugin_awsbatch_mpi.batch.status import LogTail

    fail = _failed("Essential container in task exited", exit_code=1)
    tail = LogTail("", "def/default/j9", (
        "about to fail",
        "Command 'set -euo pipefail;  exit 3' returned non-zero exit status 3.",
    ), saved=".snakemake/awsbatch-mpi/logs/r-j9.log")
    msg = failure_message("r", fail, "us-east-1", "/aws/batch/job", [tail])
    headline, *rest = msg.splitlines()
    assert headline.startswith("The command of rule 'r' exited with code 3 (AWS Batch job j9).")
    assert "saved in .snakemake/awsbatch-mpi/logs/r-j9.log" in headline
    # Batch's own code and reason come below, said to be Snakemake's
    batch_line = next(line for line in rest if line.startswith("AWS Batch reported"))
    assert "exit code 1" in batch_line and "Snakemake inside the job" in batch_line
    assert "Essential container in task exited" in batch_line
    assert "    about to fail" in rest


def test_mpirun_report_names_the_node_when_the_log_has_no_node_label():
    from snakemake_executor_plugin_awsbatch_mpi.batch.status import LogTail

    line = (
        "[awsbatch-mpi node 0] 15:05:04.312 job command exited with 1 after mpirun failed "
        "with 7 (MPI_ABORT was invoked on rank 3 in communicator MPI_COMM_WORLD with "
        "errorcode 7): exiting with 7"
    )
    msg = failure_message("m", _failed(exit_code=7), "us-east-1", "/g",
                          [LogTail("", "s", (line,))])
    assert "mpirun on node0 reported: MPI_ABORT was invoked on rank 3" in msg
    assert "mpirun on  " not in msg


def test_nodes_that_could_not_connect_to_s3_are_named_with_the_network_fix():
    from snakemake_executor_plugin_awsbatch_mpi.batch.status import LogTail

    timeout = (  # botocore's ConnectTimeoutError, what a node without a way to S3 meets on AWS
        "[awsbatch-mpi node 1] 10:00:05.000 cannot read the rendezvous key s3://b/p/k: Connect "
        'timeout on endpoint URL: "https://b.s3.us-east-1.amazonaws.com/p/k"'
    )
    tails = [LogTail("node0", "s0", ("fine",)), LogTail("node1", "s1", (timeout,))]
    msg = failure_message("m", _failed(exit_code=78), "us-east-1", "/g", tails)
    assert (
        "node1 could not connect to S3: the containers of multi-node jobs get no public IP "
        "(awsvpc mode)" in msg
    )
    assert "S3 gateway endpoint" in msg and "awsbatch-mpi doctor" in msg
    assert "node0 could not" not in msg
    # A single-container job (no node label) uses the instance's network: not this advice.
    single = failure_message("r", _failed(exit_code=1), "us-east-1", "/g",
                             [LogTail("", "s", (timeout,))])
    assert "could not connect to S3" not in single


def test_console_links_follow_the_regions_partition():
    from snakemake_executor_plugin_awsbatch_mpi.batch.status import logs_url, partition

    assert partition("cn-north-1") == "aws-cn"
    assert partition("us-gov-west-1") == "aws-us-gov"
    assert console_url("eu-west-1", "j").startswith("https://eu-west-1.console.aws.amazon.com/")
    assert console_url("cn-north-1", "j").startswith("https://cn-north-1.console.amazonaws.cn/")
    assert console_url("us-gov-west-1", "j").startswith(
        "https://us-gov-west-1.console.amazonaws-us-gov.com/batch/"
    )
    assert logs_url("cn-northwest-1", "/g", "s").startswith(
        "https://cn-northwest-1.console.amazonaws.cn/cloudwatch/"
    )
    # A partition without a public console (e.g. aws-iso) gets no link rather than a wrong one.
    assert console_url("us-iso-east-1", "j") is None
    msg = failure_message("r", _failed(exit_code=2), "us-iso-east-1", "/g")
    assert "Console:" not in msg and "Logs:" not in msg


def test_an_image_without_a_shell_is_told_apart_with_what_to_do():
    """Rules in any image (issue 22): the container cannot start without /bin/sh; ECS and
    the emulation's docker runtime both pass the runtime's own words on."""
    from snakemake_executor_plugin_awsbatch_mpi.batch.status import NO_SHELL_ADVICE, lacks_shell

    reason = (
        "CannotStartContainerError: Error response from daemon: failed to create shim task: OCI "
        'runtime create failed: runc create failed: unable to start container process: exec: '
        '"/bin/sh": stat /bin/sh: no such file or directory: unknown'
    )
    fail = Failure("j1", "Essential container in task exited", reason, None, None)
    assert lacks_shell(fail)
    message = failure_message("align", fail, "us-east-1", "/aws/batch/job")
    assert NO_SHELL_ADVICE in message and "a static busybox is enough" in message
    other = Failure("j2", None, 'CannotStartContainerError: exec: "/app": no such file', 1, None)
    assert not lacks_shell(other)
    assert NO_SHELL_ADVICE not in failure_message("align", other, "us-east-1", "/aws/batch/job")


def test_headline_of_a_job_the_disk_check_stopped_is_the_checks_message():
    """Issue 19 §2: the in-job disk check's message leads, not Batch's bare exit code 28."""
    from snakemake_executor_plugin_awsbatch_mpi.batch.status import LogTail
    from snakemake_executor_plugin_awsbatch_mpi.core.disk_guard import DISK_GUARD_MARK

    fail = _failed("Essential container in task exited", exit_code=28)
    line = (f"{DISK_GUARD_MARK} rule 'r' asks for disk_mb=50000 (50,000 MB), but its working "
            "directory /w has only 1,234 MB free, so the job stops before the rule runs.")
    tail = LogTail("", "s", (line,), saved="logs/r-j9.log")
    headline, *rest = failure_message("r", fail, "us-east-1", "/g", [tail]).splitlines()
    assert headline == (
        "AWS Batch job j9 of rule 'r' stopped at its start: rule 'r' asks for disk_mb=50000 "
        "(50,000 MB), but its working directory /w has only 1,234 MB free, so the job stops "
        "before the rule runs. The log is saved in logs/r-j9.log (last lines below)."
    )
    assert any("exit code 28" in line for line in rest)


def test_lost_to_spot_needs_a_host_ec2_reason_on_the_last_attempt_and_no_exit_code():
    reclaim = "Host EC2 (instance i-0abc) terminated."
    lost = {"status": "FAILED", "statusReason": reclaim,
            "attempts": [{"statusReason": reclaim, "container": {}}]}
    assert lost_to_spot(lost)
    exited = {"status": "FAILED", "statusReason": reclaim,
              "attempts": [{"statusReason": reclaim, "container": {"exitCode": 1}}]}
    assert not lost_to_spot(exited)  # the command got to exit: not a lost host
    earlier = {"status": "FAILED", "statusReason": "Essential container in task exited",
               "attempts": [{"statusReason": reclaim, "container": {}},
                            {"statusReason": "Essential container in task exited",
                             "container": {"exitCode": 3}}]}
    assert not lost_to_spot(earlier)  # only the last attempt counts


def test_a_job_lost_to_spot_is_pointed_at_the_fallback_queue():
    reclaim = "Host EC2 (instance i-0abc) terminated."
    fail = failure({"jobId": "j", "status": "FAILED", "statusReason": reclaim,
                    "attempts": [{"statusReason": reclaim, "container": {}}]})
    message = failure_message("sort", fail, "us-east-1", "/g")
    assert "lost its instance on its last attempt (a Spot reclaim" in message
    assert "--awsbatch-mpi-fallback-job-queue" in message
