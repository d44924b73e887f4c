"""A local emulation shared by the integration tests, with the client pointed at it."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import boto3
import pytest

from snakemake_executor_plugin_awsbatch_mpi.local import LocalEmulation


@pytest.fixture(scope="session")
def emulation():
    with LocalEmulation() as emu:
        yield emu


@pytest.fixture
def emulated_env(emulation, monkeypatch):
    """Point boto3 (plugin and S3 storage plugin) at the emulation, as a user would."""
    for name in list(os.environ):
        if name.startswith("AWS_") or name.startswith("SNAKEMAKE_AWSBATCH_MPI_"):
            monkeypatch.delenv(name)
    for name, value in emulation.client_env().items():
        monkeypatch.setenv(name, value)
    # The tests' own boto3 clients meet the emulation's 50 calls/s quota as any script does on
    # AWS: they back off instead of failing (the plugin's clients configure their own retries).
    monkeypatch.setenv("AWS_RETRY_MODE", "adaptive")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "10")
    return emulation


@pytest.fixture
def batch_client(emulated_env):
    return boto3.client("batch")


def jobs_with_tag(batch, key: str, value: str, queues=("local-cpu", "local-gpu")) -> list[dict]:
    """All jobs in the emulation carrying a tag, fully described (`queues=None`: every queue)."""
    if queues is None:
        queues = [q["jobQueueName"] for q in batch.describe_job_queues()["jobQueues"]]
    ids = []
    for queue in queues:
        for status in ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING",
                       "SUCCEEDED", "FAILED"):
            ids += [j["jobId"] for j in
                    batch.list_jobs(jobQueue=queue, jobStatus=status)["jobSummaryList"]]
    found = []
    for start in range(0, len(ids), 100):
        found += batch.describe_jobs(jobs=ids[start:start + 100])["jobs"]
    return [j for j in found if (j.get("tags") or {}).get(key) == value]


def with_array_children(batch, jobs: list[dict]) -> list[dict]:
    """`jobs` with each array parent replaced by its children (`<id>:<i>`, described), which
    carry the parent's tags: Snakemake tracks the children, ListJobs lists only parents."""
    expanded = []
    for job in jobs:
        size = (job.get("arrayProperties") or {}).get("size")
        if not size or "index" in job["arrayProperties"]:
            expanded.append(job)
            continue
        ids = [f"{job['jobId']}:{i}" for i in range(int(size))]
        for child in batch.describe_jobs(jobs=ids)["jobs"]:
            expanded.append({**child, "tags": child.get("tags") or job.get("tags") or {}})
    return expanded


def wait_for_jobs(
    batch, workflow: str, ready: Callable[[list[dict]], bool], timeout: float, what: str
) -> list[dict]:
    """Poll the jobs of a test workflow until `ready(jobs)`; fail with `what` on timeout."""
    deadline = time.time() + timeout
    while True:
        jobs = jobs_with_tag(batch, "snakemake-workflow", workflow)
        if ready(jobs):
            return jobs
        assert time.time() < deadline, f"{what}: {[j['status'] for j in jobs]}"
        time.sleep(0.3)
