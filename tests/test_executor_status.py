"""The executor's status loop against a stubbed Batch client: bounded polling of trouble."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from botocore.exceptions import ClientError

from snakemake_executor_plugin_awsbatch_mpi.batch.client import BatchClient
from snakemake_executor_plugin_awsbatch_mpi.batch.runnable import RunnableMonitor
from snakemake_executor_plugin_awsbatch_mpi.executor import (
    MAX_DESCRIBE_FAILURES,
    MAX_MISSING_CHECKS,
    Executor,
)


class NoLimit:
    async def __aenter__(self):
        return None

    async def __aexit__(self, *exc):
        return None


class Stub:
    def __init__(self, answer):
        self.answer = answer
        self.meta = SimpleNamespace(region_name="us-east-1")
        self.calls = 0

    def describe_jobs(self, jobs):
        self.calls += 1
        return self.answer(jobs)


def make_executor(answer):
    errors, successes, warnings = [], [], []
    executor = SimpleNamespace(
        batch=BatchClient(client=Stub(answer), calls_per_second=1e6),
        status_rate_limiter=NoLimit(),
        settings=SimpleNamespace(batch_attempts=3, log_group="/aws/batch/job", log_tail_lines=5),
        logger=SimpleNamespace(warning=warnings.append, info=warnings.append),
        _missing={},
        _attempts_seen={},
        _describe_failures=0,
        report_job_error=lambda info, msg=None, **kw: errors.append((info.external_jobid, msg)),
        report_job_success=lambda info: successes.append(info.external_jobid),
    )
    from collections import Counter

    executor._missing = Counter()
    executor._runnable = RunnableMonitor(executor.batch, 0, warnings.append)  # off
    executor._resubmit_on_demand = lambda i, d: None  # no fallback queue
    executor._report_attempts = lambda i, d: Executor._report_attempts(executor, i, d)
    executor._report_failure = lambda i, d: Executor._report_failure(executor, i, d)
    executor._forget_mpi_key = lambda uri: Executor._forget_mpi_key(executor, uri)
    return executor, errors, successes, warnings


def check(executor, active):
    async def run():
        return [j async for j in Executor.check_active_jobs(executor, active)]

    return asyncio.run(run())


def active(*ids):
    return [SimpleNamespace(external_jobid=i, aux={"rule": "r"}) for i in ids]


def test_job_batch_forgets_is_an_error_after_bounded_checks():
    executor, errors, _, _ = make_executor(lambda jobs: {"jobs": []})
    jobs = active("gone")
    for _ in range(MAX_MISSING_CHECKS - 1):
        assert check(executor, jobs) == jobs
    assert check(executor, jobs) == []
    assert errors and "no longer knows job gone" in errors[0][1]
    assert not executor._missing  # forgotten once reported


def test_describe_failures_are_retried_then_reported():
    def fail(jobs):
        raise ClientError({"Error": {"Code": "ServerException", "Message": "boom"}}, "DescribeJobs")

    executor, errors, _, warnings = make_executor(fail)
    jobs = active("a", "b")
    for _ in range(MAX_DESCRIBE_FAILURES - 1):
        assert check(executor, jobs) == jobs
    assert check(executor, jobs) == []
    assert [job for job, _ in errors] == ["a", "b"]
    assert "may still be running" in errors[0][1]
    assert any("retrying" in w for w in warnings)


def test_outcomes_and_chunking():
    def answer(jobs):
        assert len(jobs) <= 100
        return {
            "jobs": [
                {"jobId": j, "status": "SUCCEEDED" if j.startswith("ok") else "RUNNING"}
                for j in jobs
            ]
        }

    executor, errors, successes, _ = make_executor(answer)
    jobs = active(*[f"ok{i}" for i in range(150)], *[f"run{i}" for i in range(100)])
    still = check(executor, jobs)
    assert len(successes) == 150 and len(still) == 100 and not errors
    assert set(executor._attempts_seen) == {f"run{i}" for i in range(100)}  # ended jobs dropped
    assert executor.batch.client.calls == 3  # 250 ids in chunks of 100


def test_mpi_key_object_is_deleted_when_the_job_ends_not_before():
    status = {"mpi1": "RUNNING"}
    executor, _, successes, _ = make_executor(
        lambda jobs: {"jobs": [{"jobId": j, "status": status[j]} for j in jobs]}
    )
    deleted: list[dict] = []
    executor.batch = BatchClient(
        client=executor.batch.client,
        s3_client=SimpleNamespace(delete_object=lambda **kw: deleted.append(kw)),
        calls_per_second=1e6,
    )
    jobs = [SimpleNamespace(external_jobid="mpi1", aux={"rule": "r", "mpi_key": "s3://b/p/k"})]
    assert check(executor, jobs) == jobs
    assert deleted == []  # the nodes may still need it (a child starting late)
    status["mpi1"] = "SUCCEEDED"
    assert check(executor, jobs) == []
    assert successes == ["mpi1"]
    assert deleted == [{"Bucket": "b", "Key": "p/k"}]
