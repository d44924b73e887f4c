"""retryStrategy in the emulation (moto ignores it) and a fake Spot reclaim, through boto3."""

from __future__ import annotations

from snakemake_executor_plugin_awsbatch_mpi.core.jobdef import retry_strategy
from snakemake_executor_plugin_awsbatch_mpi.local.faults import reclaim_first_attempt
from snakemake_executor_plugin_awsbatch_mpi.local.retry import SPOT_RECLAIM_REASON, should_retry

STRATEGY = retry_strategy(3)


def test_plugin_strategy_retries_infrastructure_failures_only():
    assert should_retry(STRATEGY, 1, SPOT_RECLAIM_REASON, None, None)
    assert should_retry(STRATEGY, 1, "Task failed to start", "CannotPullContainerError", None)
    assert not should_retry(STRATEGY, 1, "Essential container in task exited", None, 3)
    assert not should_retry(
        STRATEGY, 1, "Essential container in task exited", "OutOfMemoryError: killed", 137
    )
    assert not should_retry(STRATEGY, 3, SPOT_RECLAIM_REASON, None, None)  # attempts used up
    assert not should_retry(None, 1, SPOT_RECLAIM_REASON, None, None)
    assert should_retry({"attempts": 2}, 1, "anything", None, 1)  # no rules: AWS retries


def test_spot_reclaim_is_retried_by_the_emulation(aws, shell_def):
    with reclaim_first_attempt("spotty"):
        job_id = aws.submit_shell(
            "spotty-1", shell_def, 'echo "attempt $AWS_BATCH_JOB_ATTEMPT"',
            retryStrategy=STRATEGY,
        )
        job = aws.wait(job_id, timeout=60)
        lost = aws.wait(aws.submit_shell("spotty-2", shell_def, "true"), timeout=60)  # no retry
    assert job["status"] == "SUCCEEDED"
    assert len(job["attempts"]) == 2
    assert job["attempts"][0]["statusReason"].startswith("Host EC2")
    assert "exitCode" not in job["attempts"][0]["container"]
    assert lost["status"] == "FAILED" and lost["statusReason"].startswith("Host EC2")
    app = aws.wait(aws.submit_shell("appfail", shell_def, "exit 4", retryStrategy=STRATEGY),
                   timeout=60)
    assert app["status"] == "FAILED" and len(app["attempts"]) == 1  # not retried
