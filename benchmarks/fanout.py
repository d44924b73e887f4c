"""Fan-out of N independent jobs of one rule: Batch API calls per job and client cost.

    python benchmarks/fanout.py [--jobs 200] [--mode simple|emulation] [--no-arrays]

`simple` (default) lets moto's simple Batch finish every job the moment it is submitted, with
the outputs placed in S3 beforehand and `--forceall`: it measures the client alone (the API
path is the plugin's real one). `emulation` runs every job as a real local process (slow: one
Snakemake process per job). Targets (issue 2): RegisterJobDefinition <= 1, SubmitJob = N,
DescribeJobs <= ceil(active/100) per status check, no CloudWatch calls when all succeed;
with array jobs (issue 5; the default since issue 20): <= 0.01 SubmitJob per job and <= 0.05
Batch calls per job. `--no-arrays` passes `--awsbatch-mpi-array-jobs none`.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import textwrap
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import count_batch_calls, run_client, snakemake_cmd  # noqa: E402

from snakemake_executor_plugin_awsbatch_mpi.local import LOCAL_BUCKET, LocalEmulation  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--mode", choices=("simple", "emulation"), default="simple")
    parser.add_argument(
        "--no-arrays", dest="arrays", action="store_false", help="one SubmitJob per job"
    )
    parser.add_argument("--arrays", action="store_true", default=True, help="(the default)")
    args = parser.parse_args()
    n = args.jobs
    with tempfile.TemporaryDirectory() as tmp, LocalEmulation() as emu:
        work = Path(tmp) / "fanout"
        work.mkdir()
        (work / "Snakefile").write_text(
            textwrap.dedent(f"""
            rule all:
                input: expand("out/{{i}}.txt", i=range({n}))
            rule fan:
                output: "out/{{i}}.txt"
                threads: 1
                resources: mem_mb=500, runtime=5
                shell: "echo {{wildcards.i}} > {{output}}"
        """)
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(emu.client_env())
        extra: list[str] = []
        if args.mode == "simple":
            requests.post(
                f"{emu.endpoint_url}/moto-api/config",
                json={"batch": {"use_docker": False}},
                timeout=10,
            )
            s3 = emu.boto3_client("s3")
            for i in range(n):
                s3.put_object(Bucket=LOCAL_BUCKET, Key=f"fanout/out/{i}.txt", Body=f"{i}\n")
            extra = ["--forceall"]
        if not args.arrays:
            extra.append("--awsbatch-mpi-array-jobs=none")
        with count_batch_calls() as calls:
            code, wall, cpu, rss = run_client(
                snakemake_cmd(f"s3://{LOCAL_BUCKET}/fanout", min(n, 500), *extra), work, env
            )
        log_text = (work / "client.log").read_text()
        stats = {k: calls.pop(k) for k in ("DescribeJobs ids", "DescribeJobs max ids")}
        kind = "array jobs" if args.arrays else "one SubmitJob per job"
        print(
            f"fan-out of {n} jobs ({args.mode} mode, {kind}): exit code {code}, wall {wall:.1f} s"
        )
        for op, count in sorted(calls.items()):
            print(f"  {op:28s} {count:6d}   {count / n:.3f} per job")
        total = sum(calls.values())
        print(f"  {'all Batch calls':28s} {total:6d}   {total / n:.3f} per job")
        print(f"  client CPU {cpu:.2f} s ({cpu / n * 1000:.1f} ms per job), peak RSS {rss:.0f} MiB")
        describes = max(1, calls["DescribeJobs"])
        print(
            f"  DescribeJobs: {calls['DescribeJobs']} calls, "
            f"{stats['DescribeJobs ids'] / describes:.0f} ids per call on average, "
            f"at most {stats['DescribeJobs max ids']} "
            f"(one call per 100 active jobs; ceil({n}/100) = {math.ceil(n / 100)})"
        )
        print(f"  CloudWatch calls: {log_text.count('Last lines of the log')}")
        if args.arrays:
            ok = calls["SubmitJob"] / n <= 0.01 and total / n <= 0.05 and code == 0
        else:
            ok = calls["RegisterJobDefinition"] <= 1 and calls["SubmitJob"] == n and code == 0
        print("targets met" if ok else "TARGETS MISSED")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
