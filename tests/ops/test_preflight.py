"""The executor's start-up `preflight` (queues and compute environments, two Batch calls)."""

from __future__ import annotations

from snakemake_executor_plugin_awsbatch_mpi.batch.client import BatchClient
from snakemake_executor_plugin_awsbatch_mpi.ops import Status, preflight


def test_preflight_passes_for_good_queues(moto_batch):
    results = preflight(moto_batch, ["cpu-q", "fg-q", "spot-q"])
    assert [r.check for r in results] == [
        "queue cpu-q",
        "queue fg-q",
        "queue spot-q",
        "compute environment cpu-ce",
        "compute environment fg-ce",
        "compute environment spot-ce",
    ]
    assert all(r.status is Status.PASS for r in results)


def test_preflight_fails_for_a_missing_queue_and_a_disabled_environment(moto_batch):
    arn = moto_batch.describe_compute_environments(computeEnvironments=["cpu-ce"])[
        "computeEnvironments"
    ][0]["computeEnvironmentArn"]
    moto_batch.update_compute_environment(computeEnvironment=arn, state="DISABLED")
    results = {r.check: r for r in preflight(moto_batch, ["cpu-q", "missing-q", "cpu-q"])}
    assert results["queue missing-q"].status is Status.FAIL
    assert "does not exist in region us-east-1" in results["queue missing-q"].message
    assert results["compute environment cpu-ce"].status is Status.FAIL
    assert "DISABLED" in results["compute environment cpu-ce"].message


def test_preflight_through_the_batch_client_uses_its_budget(moto_batch):
    client = BatchClient(client=moto_batch)
    queue_arn = moto_batch.describe_job_queues(jobQueues=["cpu-q"])["jobQueues"][0]["jobQueueArn"]
    results = preflight(client, [queue_arn, "fg-q"])
    assert all(r.status is Status.PASS for r in results)
    assert client.calls == {"describe_job_queues": 1, "describe_compute_environments": 1}


def test_preflight_turns_a_refused_call_into_a_failure(moto_batch):
    class Refusing:
        def describe_job_queues(self, **kwargs):
            from botocore.exceptions import ClientError

            raise ClientError(
                {"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "DescribeJobQueues"
            )

    [result] = preflight(Refusing(), ["cpu-q"])
    assert result.status is Status.FAIL
    assert "AccessDeniedException" in result.message and "DescribeJobQueues" in result.message
    assert preflight(moto_batch, []) == []


def test_preflight_refuses_a_spot_fallback_queue(moto_batch):
    results = {r.check: r for r in preflight(moto_batch, ["cpu-q"], fallback_queue="spot-q")}
    assert results["fallback queue spot-q"].status is Status.FAIL
    results = {r.check: r for r in preflight(moto_batch, ["fg-q"], fallback_queue="cpu-q")}
    assert results["fallback queue cpu-q"].status is Status.PASS
