"""Helpers shared by the benchmarks: count Batch API calls at the emulated server."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from moto.batch.responses import BatchResponse


@contextmanager
def count_batch_calls() -> Iterator[Counter[str]]:
    """Count Batch API actions answered by the in-process emulation, by operation name."""
    counter: Counter[str] = Counter()
    lock = threading.Lock()
    original = BatchResponse.call_action

    names = {
        "submitjob": "SubmitJob",
        "describejobs": "DescribeJobs",
        "registerjobdefinition": "RegisterJobDefinition",
        "describejobdefinitions": "DescribeJobDefinitions",
        "describejobqueues": "DescribeJobQueues",
        "describecomputeenvironments": "DescribeComputeEnvironments",
        "terminatejob": "TerminateJob",
        "listjobs": "ListJobs",
    }

    def call_action(self):
        action = self._get_action()
        name = names.get(action.lower(), action)
        with lock:
            counter[name] += 1
            if name == "DescribeJobs":
                ids = len(self._get_param("jobs") or [])
                counter["DescribeJobs ids"] += ids
                counter["DescribeJobs max ids"] = max(counter["DescribeJobs max ids"], ids)
        return original(self)

    BatchResponse.call_action = call_action
    try:
        yield counter
    finally:
        BatchResponse.call_action = original


def peak_rss_mib(pid: int) -> float | None:
    """The process's peak RSS since its exec (`VmHWM`), or None once it is gone.

    Not `ru_maxrss`: that counts the forked copy of this (large) benchmark process before the
    client's exec, so every client would seem as large as the benchmark itself.
    """
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        return None
    return None


def run_client(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, float, float, float]:
    """Run the Snakemake client; return exit code, wall s, CPU s and peak RSS MiB of it."""
    start = time.monotonic()
    proc = subprocess.Popen(
        cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=open(cwd / "client.log", "w")
    )
    peak = [0.0]
    done = threading.Event()

    def sample() -> None:  # VmHWM only grows: the last reading before exit is the peak
        while not done.wait(0.2):
            value = peak_rss_mib(proc.pid)
            if value is not None:
                peak[0] = max(peak[0], value)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(proc.pid, 0)
    done.set()
    sampler.join()
    wall = time.monotonic() - start
    cpu = usage.ru_utime + usage.ru_stime
    return os.waitstatus_to_exitcode(status), wall, cpu, peak[0]


def snakemake_cmd(prefix: str, jobs: int, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "snakemake",
        "--executor",
        "awsbatch-mpi",
        "--awsbatch-mpi-job-queue",
        "local-cpu",
        "--default-storage-provider",
        "s3",
        "--default-storage-prefix",
        prefix,
        "--jobs",
        str(jobs),
        "--seconds-between-status-checks",
        "2",
        "--latency-wait",
        "5",
        *extra,
    ]
