"""Queues that cannot place their jobs, and Spot capacity that is gone, through boto3."""

from __future__ import annotations

import time

from snakemake_executor_plugin_awsbatch_mpi.core.jobdef import retry_strategy
from snakemake_executor_plugin_awsbatch_mpi.local.faults import (
    invalid_compute_environment,
    reclaim_every_attempt,
)
from snakemake_executor_plugin_awsbatch_mpi.local.placement import INVALID_CE_REASON


def make_queue(aws, name: str, capacity: str = "EC2") -> str:
    """A queue of its own with one compute environment `<name>-ce` (idempotent)."""
    batch, emu = aws.batch, aws.emulation
    if batch.describe_job_queues(jobQueues=[name])["jobQueues"]:
        return name
    resources = {
        "type": capacity, "minvCpus": 0, "maxvCpus": 64, "instanceTypes": ["c5"],
        "subnets": [emu.subnet_id], "securityGroupIds": [emu.security_group_id],
        "instanceRole": emu.instance_profile_arn,
    }
    if capacity == "SPOT":
        resources["bidPercentage"] = 60
    ce = batch.create_compute_environment(
        computeEnvironmentName=f"{name}-ce", type="MANAGED", state="ENABLED",
        serviceRole=emu.service_role_arn, computeResources=resources,
    )["computeEnvironmentArn"]
    batch.create_job_queue(jobQueueName=name, state="ENABLED", priority=1,
                           computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce}])
    return name


def stays(aws, job_id: str, status: str, seconds: float) -> dict:
    """The job's description after it stayed in `status` for `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        job = aws.describe(job_id)
        assert job["status"] == status, job
        if time.monotonic() > deadline:
            return job
        time.sleep(0.2)


def test_invalid_compute_environment_holds_jobs_runnable_with_batchs_reason(aws, shell_def):
    queue = make_queue(aws, "held-invalid")
    with invalid_compute_environment("held-invalid-ce", "CLIENT_ERROR - role gone"):
        [env] = aws.batch.describe_compute_environments(
            computeEnvironments=["held-invalid-ce"])["computeEnvironments"]
        assert (env["status"], env["statusReason"]) == ("INVALID", "CLIENT_ERROR - role gone")
        job_id = aws.submit_shell("held-1", shell_def, "true", queue=queue)
        aws.wait(job_id, statuses=("RUNNABLE",), timeout=30)
        held = stays(aws, job_id, "RUNNABLE", 1.5)
        assert held["statusReason"] == INVALID_CE_REASON
    done = aws.wait(job_id, timeout=60)
    assert done["status"] == "SUCCEEDED" and "statusReason" not in done
    [env] = aws.batch.describe_compute_environments(
        computeEnvironments=["held-invalid-ce"])["computeEnvironments"]
    assert env["status"] == "VALID"


def test_disabled_compute_environment_holds_jobs_until_enabled(aws, shell_def):
    queue = make_queue(aws, "held-disabled")
    aws.batch.update_compute_environment(computeEnvironment="held-disabled-ce", state="DISABLED")
    try:
        job_id = aws.submit_shell("held-2", shell_def, "true", queue=queue)
        aws.wait(job_id, statuses=("RUNNABLE",), timeout=30)
        assert "statusReason" not in stays(aws, job_id, "RUNNABLE", 1.0)
    finally:
        aws.batch.update_compute_environment(
            computeEnvironment="held-disabled-ce", state="ENABLED")
    assert aws.wait(job_id, timeout=60)["status"] == "SUCCEEDED"


def test_spot_capacity_gone_reclaims_every_attempt_on_spot_queues_only(aws, shell_def):
    spot = make_queue(aws, "spot-gone", capacity="SPOT")
    with reclaim_every_attempt("gone"):
        lost = aws.wait(aws.submit_shell("gone-1", shell_def, "true", queue=spot,
                                         retryStrategy=retry_strategy(2)), timeout=60)
        kept = aws.wait(aws.submit_shell("gone-2", shell_def, "true", queue="local-cpu"),
                        timeout=60)
    assert lost["status"] == "FAILED" and len(lost["attempts"]) == 2
    assert all(a["statusReason"].startswith("Host EC2") for a in lost["attempts"])
    assert all("exitCode" not in a["container"] for a in lost["attempts"])
    assert kept["status"] == "SUCCEEDED"  # on-demand hosts are not reclaimed
