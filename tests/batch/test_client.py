import threading
import time

import pytest

from snakemake_executor_plugin_awsbatch_mpi.batch.client import (
    BatchClient,
    BatchSetupError,
    TokenBucket,
)
from snakemake_executor_plugin_awsbatch_mpi.core.jobdef import register_payload, submit_payload
from snakemake_executor_plugin_awsbatch_mpi.core.request import JobRequest, TranslationSettings
from snakemake_executor_plugin_awsbatch_mpi.core.resources import translate
from snakemake_executor_plugin_awsbatch_mpi.core.spec import JobShape, Platform


def test_queue_info_detects_platform_and_spot(moto_batch):
    client = BatchClient(region="us-east-1", calls_per_second=1000)
    assert client.queue_info("cpu-q").platform is Platform.EC2
    assert client.queue_info("fg-q").platform is Platform.FARGATE
    assert client.queue_info("spot-q").spot_only is True
    calls = sum(client.calls.values())
    client.queue_info("cpu-q")
    assert sum(client.calls.values()) == calls  # cached
    with pytest.raises(BatchSetupError, match="'nope' does not exist.*region us-east-1"):
        client.queue_info("nope")


def test_job_definition_registered_once_and_reused_across_clients(moto_batch):
    payload = register_payload(JobShape(image="img"))
    first = BatchClient(region="us-east-1", calls_per_second=1000)
    arn = first.ensure_job_definition(payload)
    for _ in range(50):
        assert first.ensure_job_definition(payload) == arn
    assert first.calls["register_job_definition"] == 1
    second = BatchClient(region="us-east-1", calls_per_second=1000)  # a later run
    assert second.ensure_job_definition(payload) == arn
    assert second.calls["register_job_definition"] == 0


def test_user_job_definition_must_exist(moto_batch):
    client = BatchClient(region="us-east-1", calls_per_second=1000)
    with pytest.raises(BatchSetupError, match="awsbatch_job_definition"):
        client.resolve_job_definition("missing-def")
    arn = client.ensure_job_definition(register_payload(JobShape(image="x")))
    name = arn.split("/")[-1].split(":")[0]
    assert client.resolve_job_definition(name) == arn


def test_submit_describe_in_chunks_and_terminate(moto_batch):
    client = BatchClient(region="us-east-1", calls_per_second=1000)
    settings = TranslationSettings(job_queue="cpu-q", default_image="img")
    spec = translate(
        JobRequest("r", 1, {}), settings, client.queue_info("cpu-q"),
        ("/bin/bash", "-c", "true"), {}, "r", {},
    )
    arn = client.ensure_job_definition(register_payload(spec.shape))
    ids = [client.submit(submit_payload(spec, arn)) for _ in range(230)]
    before = client.calls["describe_jobs"]
    found = client.describe(ids)
    assert set(found) == set(ids)
    assert client.calls["describe_jobs"] - before == 3  # ceil(230 / 100)
    stopped, failed = client.terminate(ids[:3], "test")
    assert (stopped, failed) == (3, [])


def test_token_bucket_limits_rate():
    bucket = TokenBucket(rate=50, burst=5)
    start = time.monotonic()
    threads = [threading.Thread(target=lambda: [bucket.acquire() for _ in range(10)])
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    # 30 calls, 5 free, 25 at 50/s → at least 0.5 s
    assert elapsed >= 0.45


def test_status_checks_are_not_budgeted_submissions_are(moto_batch):
    """DescribeJobs is paced by Snakemake's status limiter; a second limiter would make the
    async status loop sleep. Every other call still takes a token."""

    class CountingBucket:
        taken = 0

        def acquire(self):
            CountingBucket.taken += 1

    client = BatchClient(region="us-east-1", calls_per_second=1000)
    client.bucket = CountingBucket()
    settings = TranslationSettings(job_queue="cpu-q", default_image="img")
    spec = translate(
        JobRequest("r", 1, {}), settings, client.queue_info("cpu-q"),
        ("/bin/bash", "-c", "true"), {}, "r", {},
    )
    arn = client.ensure_job_definition(register_payload(spec.shape))
    taken = CountingBucket.taken
    ids = [client.submit(submit_payload(spec, arn)) for _ in range(3)]
    assert CountingBucket.taken - taken == 3
    taken = CountingBucket.taken
    assert set(client.describe(ids * 80)) == set(ids)
    assert CountingBucket.taken == taken
    assert client.calls["describe_jobs"] == 1


class _Stub:
    """Answers Batch's and EC2's describe calls from fixed data (no AWS)."""

    def __init__(self, region: str = "us-east-1"):
        from types import SimpleNamespace

        self.meta = SimpleNamespace(region_name=region)
        self.asked: list[dict] = []

    def describe_job_queues(self, jobQueues):
        return {"jobQueues": [{
            "jobQueueName": "q", "jobQueueArn": "arn:q", "state": "ENABLED", "status": "VALID",
            "computeEnvironmentOrder": [
                {"order": i, "computeEnvironment": f"arn:{name}"}
                for i, name in enumerate(("sized", "denied", "plain", "sized-too"))
            ],
        }]}

    def describe_compute_environments(self, computeEnvironments):
        def env(name, **template):
            resources = {"type": "EC2", "maxvCpus": 8, "instanceTypes": ["c5"]}
            if template:
                resources["launchTemplate"] = template
            return {"computeEnvironmentName": name, "computeEnvironmentArn": f"arn:{name}",
                    "type": "MANAGED", "computeResources": resources}

        return {"computeEnvironments": [
            env("sized", launchTemplateId="lt-1"), env("denied", launchTemplateName="secret"),
            env("plain"), env("sized-too", launchTemplateId="lt-1"),
        ]}

    def describe_launch_template_versions(self, **params):
        from botocore.exceptions import ClientError

        self.asked.append(params)
        if params.get("LaunchTemplateName") == "secret":
            raise ClientError({"Error": {"Code": "UnauthorizedOperation", "Message": "no"}},
                              "DescribeLaunchTemplateVersions")
        return {"LaunchTemplateVersions": [{"LaunchTemplateData": {"BlockDeviceMappings": [
            {"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 250}}]}}]}


def test_queue_info_reads_each_launch_template_once_and_skips_unreadable_ones():
    """Issue 19 §2: the root volume of each compute environment's instances."""
    stub = _Stub()
    client = BatchClient(client=stub, ec2_client=stub)
    info = client.queue_info("q")
    assert [(v.environment, v.gib) for v in info.disks] == [
        ("sized", 250), ("plain", 30), ("sized-too", 250),
    ]  # 'denied': unknown, not guessed
    assert stub.asked == [
        {"Versions": ["$Default"], "LaunchTemplateId": "lt-1"},
        {"Versions": ["$Default"], "LaunchTemplateName": "secret"},
    ]
    assert client.calls["describe_launch_template_versions"] == 2
