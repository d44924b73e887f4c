"""Render the run report of a large synthetic run (no AWS, no emulation).

    python benchmarks/report.py [--jobs 2000] [--html out.html]

Builds DescribeJobs answers of realistic shape (8 rules over two hours, ~3 % of jobs
reclaimed once and retried by Batch, ~1 % failed, every 50th job a 4-node MPI job with its
node records) and times each step of `awsbatch-mpi report`: rows and tables, the terminal
text, the JSON and the HTML with its timeline. Target (issue 13): under 5 s for 2,000 jobs.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

from snakemake_executor_plugin_awsbatch_mpi.report import (
    Prices,
    build_report,
    format_text,
    render_html,
    to_dict,
)

T0 = 1_700_000_000_000
RECLAIM = "Host EC2 (instance i-0123456789abcdef0) terminated."


def synthetic_run(n: int, seed: int = 13) -> tuple[list[dict], dict[str, list[dict]]]:
    rng = random.Random(seed)
    jobs: list[dict] = []
    details: dict[str, list[dict]] = {}
    for i in range(n):
        rule = f"rule_{i % 8}"
        created = T0 + int(i / n * 7_200_000)
        start = created + rng.randint(1_000, 600_000)
        attempts = []
        if rng.random() < 0.03:
            stop = start + rng.randint(10_000, 300_000)
            attempts.append({"startedAt": start, "stoppedAt": stop, "statusReason": RECLAIM,
                             "container": {}})  # fmt: skip
            start = stop + rng.randint(5_000, 120_000)
        stop = start + rng.randint(30_000, 1_800_000)
        failed = rng.random() < 0.01
        attempts.append({"startedAt": start, "stoppedAt": stop,
                         "container": {"exitCode": 1 if failed else 0}})  # fmt: skip
        job_id = f"{i:08d}-0000-4000-8000-000000000000"
        mpi = i % 50 == 0
        desc = {
            "jobId": job_id,
            "jobName": f"{rule}-sample{i}-chunk{i % 7}",
            "jobQueue": "arn:aws:batch:eu-west-1:123456789012:job-queue/"
            + ("mpi" if mpi else "cpu"),
            "status": "FAILED" if failed else "SUCCEEDED",
            "statusReason": "Essential container in task exited" if failed else None,
            "createdAt": created,
            "startedAt": start,
            "stoppedAt": stop,
            "attempts": attempts,
            "container": {
                "resourceRequirements": [
                    {"type": "VCPU", "value": str(2 ** (i % 4))},
                    {"type": "MEMORY", "value": str(1024 * (1 + i % 8))},
                    *([{"type": "GPU", "value": "1"}] if i % 8 == 7 else []),
                ]
            },
            "tags": {"snakemake-rule": rule, "snakemake-run-id": "bench"},
        }
        if mpi:
            desc["nodeProperties"] = {"numNodes": 4}
            details[job_id] = [
                {"jobId": f"{job_id}#{k}", "status": desc["status"],
                 "startedAt": start + k * 2_000, "stoppedAt": stop, "nodeDetails": {"nodeIndex": k}}
                for k in range(4)
            ]  # fmt: skip
        jobs.append(desc)
    return jobs, details


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--html", type=Path, default=None, help="Keep the HTML here.")
    args = parser.parse_args(argv)
    jobs, details = synthetic_run(args.jobs)
    times: dict[str, float] = {}
    began = time.perf_counter()
    report = build_report("bench", jobs, details, Prices(vcpu_hour=0.04, gpu_hour=0.5))
    times["rows and tables"] = time.perf_counter() - began
    mark = time.perf_counter()
    text = format_text(report)
    times["terminal text"] = time.perf_counter() - mark
    mark = time.perf_counter()
    document = json.dumps(to_dict(report))
    times["JSON"] = time.perf_counter() - mark
    mark = time.perf_counter()
    page = render_html(report)
    times["HTML + timeline"] = time.perf_counter() - mark
    total = time.perf_counter() - began
    if args.html:
        args.html.write_text(page)
    for step, seconds in times.items():
        print(f"{step:16s} {seconds:7.3f} s")
    print(f"{'total':16s} {total:7.3f} s for {len(report.rows)} jobs (target < 5 s)")
    print(f"HTML {len(page) / 1024:.0f} KiB, JSON {len(document) / 1024:.0f} KiB, "
          f"text {len(text.splitlines())} lines")  # fmt: skip
    return 0 if total < 5 else 1


if __name__ == "__main__":
    sys.exit(main())
