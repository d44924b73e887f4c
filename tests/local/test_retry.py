"""retryStrategy in the emulation (moto ignores it) and a fake Spot reclaim, through boto3."""

from __future__ import annotations

import time

from snakemake_executor_plugin_awsbatch_mpi.jobdef import retry_strategy
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


def _run(batch, definition, queue, name, command, retry=None):
    kwargs = {"retryStrategy": retry} if retry else {}
    job_id = batch.submit_job(
        jobName=name,
        jobQueue=queue,
        jobDefinition=definition,
        containerOverrides={"command": ["/bin/bash", "-c", command]},
        **kwargs,
    )["jobId"]
    deadline = time.time() + 60
    while time.time() < deadline:
        job = batch.describe_jobs(jobs=[job_id])["jobs"][0]
        if job["status"] in ("SUCCEEDED", "FAILED"):
            return job
        time.sleep(0.3)
    raise AssertionError("job did not finish")


def test_spot_reclaim_is_retried_by_the_emulation(emulation):
    batch = emulation.boto3_client("batch")
    definition = batch.register_job_definition(
        jobDefinitionName="retry-def",
        type="container",
        containerProperties={
            "image": "img",
            "command": ["true"],
            "resourceRequirements": [
                {"type": "VCPU", "value": "1"},
                {"type": "MEMORY", "value": "256"},
            ],
        },
    )["jobDefinitionArn"]
    with reclaim_first_attempt("spotty"):
        job = _run(
            batch,
            definition,
            "local-cpu",
            "spotty-1",
            'echo "attempt $AWS_BATCH_JOB_ATTEMPT"',
            STRATEGY,
        )
        lost = _run(batch, definition, "local-cpu", "spotty-2", "true")  # no retry strategy
    assert job["status"] == "SUCCEEDED"
    assert len(job["attempts"]) == 2
    assert job["attempts"][0]["statusReason"].startswith("Host EC2")
    assert "exitCode" not in job["attempts"][0]["container"]
    assert lost["status"] == "FAILED" and lost["statusReason"].startswith("Host EC2")
    app = _run(batch, definition, "local-cpu", "appfail", "exit 4", STRATEGY)
    assert app["status"] == "FAILED" and len(app["attempts"]) == 1  # not retried
