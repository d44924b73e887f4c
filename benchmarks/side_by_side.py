"""This plugin and the official AWS Batch plugin, side by side in one emulation with AWS's quota.

    python benchmarks/side_by_side.py [--instant 60,300,1000] [--fanout 21] [--repeat 1]
                                      [--official-venv DIR] [--official-retries]
                                      [--profile FILE] [--keep DIR]

A fresh `LocalEmulation` with the Batch API quota on (50 calls per second, HTTP 429 above it,
as on AWS) serves each run of each client, one after the other, each client at its defaults
(`-j 1000`, nothing else tuned):

- instant runs: N jobs of one rule that Batch finishes the moment they start (moto's simple
  Batch; the outputs are put in S3 beforehand and `--forceall` is given), so only the client
  is measured;
- the fan-out: `--fanout` jobs with real work (the emulation runs each job's Snakemake as a
  local process): N-1 `fan` jobs, then one `gather` job over their outputs.

For each run it prints the client's wall time, CPU time and peak RSS, the Batch calls the
emulation answered (throttled ones included) and how many it throttled, then the ratios
(official / ours). The official plugin, `snakemake-executor-plugin-aws-batch` 0.2.1, runs in
a virtual environment of its own, created on first use from `official-constraints.txt`
(the same Snakemake and S3 storage plugin as ours). Its jobs install the S3 storage plugin
with pip at their start (its default `auto_deploy_default_storage_provider`), so the fan-out
needs PyPI.

`--official-retries` also runs the official plugin with botocore's adaptive retry mode and 10
attempts (`AWS_RETRY_MODE`, `AWS_MAX_ATTEMPTS`): not its defaults, but at its defaults it
gives up on the third 429 in a row, so it rarely finishes 300 or 1,000 jobs under the quota
and there is no wall time to compare with.

`--profile FILE` also runs our client once more under cProfile on the largest instant run
and prints where its time goes.

Goal (issue 20): at 1,000 instant jobs at least 3x less client wall time and 20x fewer Batch
calls than the official plugin, and not one throttled call; on the fan-out 3x less wall time.
Numbers on a shared 2-core machine are noisy: the ratios are what matters.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import count_batch_calls, run_client  # noqa: E402

from snakemake_executor_plugin_awsbatch_mpi.local import LOCAL_BUCKET, LocalEmulation  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
OFFICIAL_CONSTRAINTS = HERE / "official-constraints.txt"
OFFICIAL_PACKAGES = (
    "snakemake-executor-plugin-aws-batch",
    "snakemake",
    "snakemake-storage-plugin-s3",
)
JOBS_FLAG = "1000"  # both at -j 1000, as in the issue


@dataclass
class Result:
    plugin: str
    workload: str
    exit_code: int
    wall: float
    cpu: float
    rss: float
    calls: int
    throttled: int
    by_operation: dict[str, int]


def official_python(venv: Path) -> Path:
    """The official plugin's interpreter, installing it (pinned) on first use."""
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"creating {venv} with the official plugin (pinned in {OFFICIAL_CONSTRAINTS.name})")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "-c", str(OFFICIAL_CONSTRAINTS),
             *OFFICIAL_PACKAGES],
            check=True,
        )
    return python


def instant_snakefile(n: int) -> str:
    return textwrap.dedent(f"""
        rule all:
            input: expand("out/{{i}}.txt", i=range({n}))
        rule fan:
            output: "out/{{i}}.txt"
            threads: 1
            resources: mem_mb=1024, runtime=5
            shell: "echo {{wildcards.i}} > {{output}}"
    """)


def fanout_snakefile(n: int) -> str:
    return textwrap.dedent(f"""
        rule all:
            input: "gathered.txt"
        rule fan:
            output: "out/{{i}}.txt"
            threads: 1
            resources: mem_mb=1024, runtime=5
            shell: "sleep 2; echo {{wildcards.i}} > {{output}}"
        rule gather:
            input: expand("out/{{i}}.txt", i=range({n - 1}))
            output: "gathered.txt"
            threads: 1
            resources: mem_mb=1024, runtime=5
            shell: "cat {{input}} > {{output}}"
    """)


# `--official-retries`: the official plugin once more, with botocore's adaptive retries and 10
# attempts (it makes its clients without a retry configuration, so the environment applies):
# not its defaults, but it then survives the quota and finishes the larger runs.
RETRIES = "official+retries"
RETRY_ENV = {"AWS_RETRY_MODE": "adaptive", "AWS_MAX_ATTEMPTS": "10"}


def client_cmd(plugin: str, python: Path, prefix: str, emu: LocalEmulation) -> list[str]:
    common = [
        "--default-storage-provider", "s3", "--default-storage-prefix", prefix, "-j", JOBS_FLAG,
    ]
    if plugin == "ours":
        return [str(python), "-m", "snakemake", "--executor", "awsbatch-mpi",
                "--awsbatch-mpi-job-queue", "local-cpu", *common]
    return [str(python), "-m", "snakemake", "--executor", "aws-batch",
            "--aws-batch-region", emu.region, "--aws-batch-job-queue", "local-cpu",
            "--aws-batch-job-role", emu.job_role_arn, *common]


def simple_batch(emu: LocalEmulation, on: bool) -> None:
    """moto's simple Batch finishes every job inside SubmitJob; off = jobs really run."""
    requests.post(
        f"{emu.endpoint_url}/moto-api/config", json={"batch": {"use_docker": not on}}, timeout=10
    )


def run_one(
    emu: LocalEmulation,
    plugin: str,
    python: Path,
    workload: str,
    n: int,
    root: Path,
    profile: Path | None = None,
    run: int = 0,
) -> Result:
    name = f"{plugin.replace('+', '-')}-{workload}-{n}" + (f"-{run + 1}" if run else "") + (
        "-profiled" if profile else ""
    )
    work = root / name
    work.mkdir()
    instant = workload == "instant"
    (work / "Snakefile").write_text(instant_snakefile(n) if instant else fanout_snakefile(n))
    prefix = f"s3://{LOCAL_BUCKET}/{name}"
    extra: list[str] = []
    simple_batch(emu, instant)
    if instant:
        s3 = emu.boto3_client("s3")
        for i in range(n):
            s3.put_object(Bucket=LOCAL_BUCKET, Key=f"{name}/out/{i}.txt", Body=f"{i}\n")
        extra = ["--forceall"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SNAKEMAKE_"))}
    env.update(emu.client_env())
    if plugin == RETRIES:
        env.update(RETRY_ENV)
    cmd = client_cmd(plugin, python, prefix, emu) + extra
    if profile is not None:
        cmd[1:1] = ["-m", "cProfile", "-o", str(profile)]
    quota = emu.batch_quota
    throttled_before = quota.counts["throttled"] if quota else 0
    with count_batch_calls() as calls:
        code, wall, cpu, rss = run_client(cmd, work, env)
    throttled = (quota.counts["throttled"] if quota else 0) - throttled_before
    by_operation = {k: v for k, v in calls.items() if not k.startswith("DescribeJobs ")}
    if code != 0:
        tail = (work / "client.log").read_text()[-3000:]
        print(f"  {name}: exit code {code}; end of its log:\n{textwrap.indent(tail, '    ')}")
    return Result(plugin, f"{workload} {n}", code, wall, cpu, rss, sum(by_operation.values()),
                  throttled, by_operation)


def table(results: list[Result]) -> str:
    lines = [
        "| workload | plugin | exit | client wall s | client CPU s | peak RSS MiB | Batch calls "
        "| throttled |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.workload} | {r.plugin} | {r.exit_code} | {r.wall:.1f} | {r.cpu:.1f} | "
            f"{r.rss:.0f} | {r.calls:,} | {r.throttled} |"
        )
    lines += ["", "Ratios, other / ours, over the runs that finished (medians):", "",
              "| workload | other | finished: ours, other | wall | CPU | Batch calls | "
              "throttled (ours) |", "|---|---|---|---|---|---|---|"]

    def med(runs: list[Result], key: str) -> float:
        return statistics.median(getattr(r, key) for r in runs)

    workloads = list(dict.fromkeys(r.workload for r in results))
    others = [p for p in dict.fromkeys(r.plugin for r in results) if p != "ours"]
    for workload in workloads:
        ours = [r for r in results if r.workload == workload and r.plugin == "ours"]
        for other in others:
            theirs = [r for r in results if r.workload == workload and r.plugin == other]
            if not ours or not theirs:
                continue
            done_o = [r for r in ours if r.exit_code == 0]
            done_t = [r for r in theirs if r.exit_code == 0]
            head = (f"| {workload} | {other} | {len(done_o)}/{len(ours)}, "
                    f"{len(done_t)}/{len(theirs)} |")
            throttled = sum(r.throttled for r in ours)
            if not done_o or not done_t:
                lines.append(f"{head} – | – | – | {throttled} |")
                continue
            lines.append(
                f"{head} {med(done_t, 'wall') / med(done_o, 'wall'):.1f}x | "
                f"{med(done_t, 'cpu') / max(med(done_o, 'cpu'), 1e-9):.1f}x | "
                f"{med(done_t, 'calls') / max(med(done_o, 'calls'), 1):.1f}x | {throttled} |"
            )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instant", default="60,300,1000",
                        help="sizes of the instant runs, comma-separated ('' for none)")
    parser.add_argument("--fanout", type=int, default=21, help="jobs of the fan-out (0: none)")
    parser.add_argument("--official-venv", type=Path, default=REPO / ".venv-official")
    parser.add_argument("--only", choices=("ours", "official"), default=None)
    parser.add_argument("--official-retries", action="store_true",
                        help=f"also run the official plugin with {RETRY_ENV} (not its defaults)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="run every workload this many times per plugin (alternating)")
    parser.add_argument("--keep", type=Path, default=None,
                        help="run in this (new) folder and keep each client's log there")
    parser.add_argument("--profile", type=Path, default=None,
                        help="write a cProfile of our client on the largest instant run here")
    args = parser.parse_args()
    sizes = [int(s) for s in args.instant.split(",") if s.strip()]
    plugins = {"ours": Path(sys.executable)}
    if args.only != "ours":
        plugins["official"] = official_python(args.official_venv)
    if args.official_retries and args.only != "ours":
        plugins[RETRIES] = plugins["official"]
    if args.only == "official":
        del plugins["ours"]
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="side-by-side-") as tmp:
        root = Path(tmp)
        if args.keep is not None:
            args.keep.mkdir(parents=True)
            root = args.keep
        workloads = [("instant", n) for n in sizes]
        if args.fanout:
            workloads.append(("fanout", args.fanout))
        runs = [(w, n, k) for w, n in workloads for k in range(args.repeat)]
        print("every run gets a fresh emulation with AWS's quota of 50 Batch calls per second")
        for workload, n, k in runs:
            for plugin, python in plugins.items():
                # A fresh emulation per run: moto keeps every object, job and log of earlier
                # runs in the server's process, which slows the later runs down (AWS does not).
                with LocalEmulation() as emu:
                    result = run_one(emu, plugin, python, workload, n, root, run=k)
                results.append(result)
                ops = ", ".join(f"{k} {v}" for k, v in sorted(result.by_operation.items()))
                print(f"{result.workload:12s} {plugin:8s} exit {result.exit_code} "
                      f"wall {result.wall:6.1f} s CPU {result.cpu:5.1f} s "
                      f"RSS {result.rss:4.0f} MiB calls {result.calls:5d} "
                      f"throttled {result.throttled:3d} ({ops})", flush=True)
        if args.profile and sizes and "ours" in plugins:
            with LocalEmulation() as emu:
                run_one(emu, "ours", plugins["ours"], "instant", max(sizes), root, args.profile)
    print()
    print(table(results))
    if args.profile and args.profile.exists():
        import pstats

        print(f"\nWhere our client's time goes ({max(sizes)} instant jobs, cProfile):")
        pstats.Stats(str(args.profile)).sort_stats("cumulative").print_stats(25)
    for r in results:
        if r.plugin != "ours" and r.exit_code != 0:
            print(f"{r.plugin} failed the {r.workload} run (exit code {r.exit_code})")
    ours_failed = [r for r in results if r.plugin == "ours" and r.exit_code != 0]
    throttled = sum(r.throttled for r in results if r.plugin == "ours")
    print(f"our runs: {len(ours_failed)} failed, {throttled} throttled calls")
    return 1 if ours_failed or throttled else 0


if __name__ == "__main__":
    sys.exit(main())
