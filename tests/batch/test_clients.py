"""The one client factory and the one describe-in-chunks helper."""

from __future__ import annotations

from snakemake_executor_plugin_awsbatch_mpi.batch import clients as aws
from snakemake_executor_plugin_awsbatch_mpi.batch.client import BatchClient


def test_chunks_are_distinct_ids_in_order_100_at_a_time():
    ids = [f"j{i}" for i in range(250)]
    got = list(aws.chunks(ids + ids[:10]))
    assert [len(c) for c in got] == [100, 100, 50]
    assert [i for c in got for i in c] == ids
    assert list(aws.chunks([])) == []


def test_describe_in_chunks_makes_one_call_per_chunk():
    asked: list[list[str]] = []

    def describe_jobs(jobs):
        asked.append(jobs)
        return {"jobs": [{"jobId": j} for j in jobs if j != "gone"]}

    found = aws.describe_in_chunks(describe_jobs, "jobs", "jobs", ["gone", *map(str, range(150))])
    assert len(asked) == 2 and asked[0][0] == "gone"
    assert [f["jobId"] for f in found] == [str(i) for i in range(150)]


def test_one_retry_policy_a_run_retries_longer_than_a_person_waits():
    run, person = aws.config(aws.Purpose.RUN), aws.config(aws.Purpose.INTERACTIVE)
    assert run.retries == {"mode": "adaptive", "max_attempts": 10}
    assert person.retries["mode"] == "adaptive" and person.retries["max_attempts"] == 3
    assert person.connect_timeout == 5


def test_clients_follow_the_region_rule(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    assert aws.client("batch").meta.region_name == "eu-west-1"
    assert aws.client("batch", "us-east-2").meta.region_name == "us-east-2"
    batch = BatchClient(region="ap-south-1")
    assert batch.region == "ap-south-1"
    assert batch.s3_client.meta.region_name == "ap-south-1"
    assert batch.client.meta.config.retries == {"mode": "adaptive", "total_max_attempts": 11}


def test_queues_and_environments_are_described_once_per_client(moto_batch):
    client = BatchClient(client=moto_batch)
    assert set(client.job_queues(["cpu-q", "fg-q", "missing-q"])) == {"cpu-q", "fg-q"}
    client.queue_info("cpu-q")
    client.queue_info("fg-q")
    assert client.calls == {"describe_job_queues": 1, "describe_compute_environments": 2}
    client.job_queues(["missing-q", "cpu-q"])
    assert client.calls["describe_job_queues"] == 1
