"""Latency from an upstream job finishing to its dependent starting, on the emulation.

    python benchmarks/dependency_latency.py [--chain 3]

Runs a chain of N dependent jobs twice: normally (Snakemake notices each job finished at a
status check, then submits the next) and with --immediate-submit (every job is submitted at
once with dependsOn, and Batch starts the next one itself). Reports, per mode, the median
gap between a job's stoppedAt and its dependent's startedAt.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import run_client, snakemake_cmd  # noqa: E402

from snakemake_executor_plugin_awsbatch_mpi.batch.runs import describe_all, queue_job_ids  # noqa: E402
from snakemake_executor_plugin_awsbatch_mpi.local import LocalEmulation  # noqa: E402


def chain_gaps(batch, workflow: str, n: int, timeout: float = 300) -> list[float]:
    deadline = time.time() + timeout
    while True:
        described = describe_all(batch, queue_job_ids(batch, ["local-cpu"]))
        jobs = [j for j in described if j["tags"].get("snakemake-workflow") == workflow]
        if len(jobs) == n and all(j["status"] in ("SUCCEEDED", "FAILED") for j in jobs):
            break
        if time.time() > deadline:
            raise TimeoutError(workflow)
        time.sleep(0.5)
    jobs.sort(key=lambda j: int(j["tags"]["snakemake-rule"].removeprefix("step")))
    return [(b["startedAt"] - a["stoppedAt"]) / 1000 for a, b in zip(jobs, jobs[1:], strict=False)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chain", type=int, default=3)
    args = parser.parse_args()
    n = args.chain
    rules = [f"rule all:\n    input: 'out{n - 1}.txt'\n"]
    rules.append("rule step0:\n    output: 'out0.txt'\n    shell: 'echo 0 > {output}'\n")
    for i in range(1, n):
        rules.append(
            f"rule step{i}:\n    input: 'out{i - 1}.txt'\n    output: 'out{i}.txt'\n"
            "    shell: 'cat {input} > {output}'\n"
        )
    results = {}
    with tempfile.TemporaryDirectory() as tmp, LocalEmulation() as emu:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(emu.client_env())
        batch = emu.boto3_client("batch")
        for mode, extra in (
            ("normal", []),
            ("immediate-submit", ["--immediate-submit", "--notemp"]),
        ):
            work = Path(tmp) / f"latency-{mode}"
            work.mkdir()
            (work / "Snakefile").write_text(textwrap.dedent("\n".join(rules)))
            cmd = snakemake_cmd(f"s3://snakemake-local/{work.name}", 5, *extra)
            cmd[cmd.index("--seconds-between-status-checks") + 1] = "1"
            code, wall, _, _ = run_client(cmd, work, env)
            assert code == 0, (work / "client.log").read_text()[-2000:]
            gaps = chain_gaps(batch, work.name, n)
            results[mode] = gaps
            print(
                f"{mode:>17}: client {wall:5.1f} s; upstream stop -> dependent start: "
                f"median {statistics.median(gaps):.2f} s, max {max(gaps):.2f} s"
            )
    ratio = statistics.median(results["normal"]) / max(
        statistics.median(results["immediate-submit"]), 1e-3
    )
    print(f"normal / immediate-submit latency: {ratio:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
