"""One status check over 10,000 active jobs, with a stubbed Batch client.

    python benchmarks/status_check.py [--jobs 10000] [--checks 5] [--stuck]

Drives the executor's real `check_active_jobs` (bound to a minimal stand-in for the
Snakemake executor) against a stub that answers DescribeJobs like Batch does for RUNNING
jobs (payloads of realistic size). Targets (issue 5): 100 DescribeJobs calls per check for
10,000 jobs, and < 0.5 s of client CPU per check.

With `--stuck`, every job sits RUNNABLE past the warning time in one queue (issue 19): the
check also runs the stuck-queue warning, which may add one DescribeJobQueues and one
DescribeComputeEnvironments per run (not per check) and must log one warning in all.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import tracemalloc
from types import SimpleNamespace

from snakemake_executor_plugin_awsbatch_mpi.batch.client import BatchClient
from snakemake_executor_plugin_awsbatch_mpi.batch.runnable import RunnableMonitor
from snakemake_executor_plugin_awsbatch_mpi.executor import Executor


class StubBatch:
    """Answers DescribeJobs like Batch for RUNNING jobs; answers are built up front so the
    stub's own cost stays out of the measurement."""

    QUEUE = "arn:aws:batch:us-east-1:123456789012:job-queue/cpu"
    ENV = "arn:aws:batch:us-east-1:123456789012:compute-environment/cpu-ce"

    def __init__(self, ids: list[str], status: str = "RUNNING") -> None:
        self.calls = 0
        self.other_calls = 0
        self.meta = SimpleNamespace(region_name="us-east-1")
        self.db = {job_id: self._describe(job_id, status) for job_id in ids}

    @classmethod
    def _describe(cls, job_id: str, status: str) -> dict:
        return {
            "jobId": job_id,
            "jobName": "count_kmers-sample",
            "jobQueue": cls.QUEUE,
            "status": status,
            "createdAt": 1,
            "startedAt": 2,
            "attempts": [],
            "tags": {"snakemake-rule": "count_kmers", "snakemake-run-id": "x" * 16},
            "container": {
                "command": ["/bin/bash", "-c", "python -m snakemake " + "x" * 1500],
                "resourceRequirements": [{"type": "VCPU", "value": "2"}],
                "logStreamName": f"def/default/{job_id}",
            },
        }

    def describe_jobs(self, jobs: list[str]) -> dict:
        self.calls += 1
        assert len(jobs) <= 100, "DescribeJobs takes at most 100 ids"
        return {"jobs": [self.db[job_id] for job_id in jobs]}

    def describe_job_queues(self, jobQueues: list[str]) -> dict:  # noqa: N803 - boto3's name
        self.other_calls += 1
        order = [{"order": 1, "computeEnvironment": self.ENV}]
        return {"jobQueues": [{"jobQueueName": "cpu", "jobQueueArn": self.QUEUE,
                               "computeEnvironmentOrder": order}]}  # fmt: skip

    def describe_compute_environments(self, computeEnvironments: list[str]) -> dict:  # noqa: N803
        self.other_calls += 1
        resources = {"type": "EC2", "maxvCpus": 256, "desiredvCpus": 0, "instanceTypes": ["c5"]}
        return {"computeEnvironments": [{
            "computeEnvironmentName": "cpu-ce", "computeEnvironmentArn": self.ENV,
            "state": "ENABLED", "status": "INVALID", "statusReason": "CLIENT_ERROR - gone",
            "computeResources": resources}]}  # fmt: skip


class NoLimit:
    """Stands in for Snakemake's status rate limiter (an async context manager)."""

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None


async def check(executor: SimpleNamespace, active: list) -> list:
    return [job async for job in Executor.check_active_jobs(executor, active)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--checks", type=int, default=5)
    parser.add_argument("--stuck", action="store_true", help="every job stuck in RUNNABLE")
    args = parser.parse_args()
    ids = [f"job-{i:05d}" for i in range(args.jobs)]
    stub = StubBatch(ids, "RUNNABLE" if args.stuck else "RUNNING")
    warnings: list[str] = []
    batch = BatchClient(client=stub, calls_per_second=1_000_000)
    executor = SimpleNamespace(
        batch=batch,
        status_rate_limiter=NoLimit(),
        settings=SimpleNamespace(batch_attempts=3),
        logger=SimpleNamespace(warning=print, info=print, debug=print),
        _missing={},
        _attempts_seen={},
        _describe_failures=0,
        # Warning time 0 s would turn it off; a microsecond makes every job overdue at once.
        _runnable=RunnableMonitor(batch, 1e-8 if args.stuck else 10, warnings.append),
    )
    executor._report_attempts = lambda info, d: Executor._report_attempts(executor, info, d)
    active = [SimpleNamespace(external_jobid=i, aux={"rule": "count_kmers"}) for i in ids]
    cpu_times, calls = [], []
    for _ in range(args.checks):
        before_calls, start = stub.calls, time.process_time()
        still = asyncio.run(check(executor, active))
        cpu_times.append(time.process_time() - start)
        calls.append(stub.calls - before_calls)
        assert len(still) == args.jobs
    tracemalloc.start()  # a separate pass: tracing slows the timed checks down
    asyncio.run(check(executor, active))
    _, peak = tracemalloc.get_traced_memory()
    worst = max(cpu_times)
    print(f"{args.jobs} active jobs, {args.checks} status checks")
    print(f"  DescribeJobs calls per check: {calls[0]} (target {-(-args.jobs // 100)})")
    print(
        f"  client CPU per check: median {sorted(cpu_times)[len(cpu_times) // 2]:.3f} s, "
        f"worst {worst:.3f} s (target < 0.5 s)"
    )
    print(f"  peak traced memory during checks: {peak / 2**20:.1f} MiB")
    ok = calls[0] == -(-args.jobs // 100) and worst < 0.5
    if args.stuck:
        print(
            f"  stuck in RUNNABLE: {len(warnings)} warning(s), {stub.other_calls} other Batch "
            "call(s) in all (target: 1 warning, at most 2 calls per run)"
        )
        ok = ok and len(warnings) == 1 and stub.other_calls <= 2
    print("targets met" if ok else "TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
