"""One status check over 10,000 active jobs, with a stubbed Batch client.

    python benchmarks/status_check.py [--jobs 10000] [--checks 5]

Drives the executor's real `check_active_jobs` (bound to a minimal stand-in for the
Snakemake executor) against a stub that answers DescribeJobs like Batch does for RUNNING
jobs (payloads of realistic size). Targets (issue 5): 100 DescribeJobs calls per check for
10,000 jobs, and < 0.5 s of client CPU per check.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import tracemalloc
from types import SimpleNamespace

from snakemake_executor_plugin_awsbatch_mpi.batch.cadence import StatusCadence
from snakemake_executor_plugin_awsbatch_mpi.batch.client import BatchClient
from snakemake_executor_plugin_awsbatch_mpi.executor import Executor


class StubBatch:
    """Answers DescribeJobs like Batch for RUNNING jobs; answers are built up front so the
    stub's own cost stays out of the measurement."""

    def __init__(self, ids: list[str]) -> None:
        self.calls = 0
        self.meta = SimpleNamespace(region_name="us-east-1")
        self.db = {job_id: self._describe(job_id) for job_id in ids}

    @staticmethod
    def _describe(job_id: str) -> dict:
        return {
            "jobId": job_id,
            "jobName": "count_kmers-sample",
            "status": "RUNNING",
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
    args = parser.parse_args()
    ids = [f"job-{i:05d}" for i in range(args.jobs)]
    stub = StubBatch(ids)
    executor = SimpleNamespace(
        batch=BatchClient(client=stub, calls_per_second=1_000_000),
        status_rate_limiter=NoLimit(),
        settings=SimpleNamespace(batch_attempts=3),
        logger=SimpleNamespace(warning=print, info=print),
        _missing={},
        _missing_since={},
        _attempts_seen={},
        _ended={},
        _last_submission=None,
        _describe_failures=0,
        # Every check is due: this measures one check, not the cadence between them.
        cadence=StatusCadence(fastest=0, calls_per_second=1e9),
    )
    executor._plan_next_check = lambda now, seen: Executor._plan_next_check(executor, now, seen)
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
    print("targets met" if ok else "TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
