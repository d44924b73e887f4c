"""Disk on EC2 (issue 19 §2), through Snakemake, the plugin and the local emulation.

A rule whose disk_mb exceeds the root volume of its queue's instances gets one warning before
the first SubmitJob (the volume read from the compute environment's launch template), and its
job stops at once when its working directory has less free space; a normal rule runs, and the
disk_mb Snakemake gives every job by default is neither warned about nor checked.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from datetime import datetime

import boto3
import pytest

from snakemake_executor_plugin_awsbatch_mpi.core.disk_guard import DISK_GUARD_MARK
from snakemake_executor_plugin_awsbatch_mpi.local import LOCAL_BUCKET

from .conftest import jobs_with_tag
from .test_executor import snakemake_cmd, write_workflow

pytestmark = pytest.mark.integration


def _seconds(job: dict) -> float:
    """How long the job's container ran (Batch's startedAt/stoppedAt are epoch ms)."""
    return (job["stoppedAt"] - job["startedAt"]) / 1000


def test_a_rule_needing_more_disk_than_is_free_stops_at_once_and_others_run(
    emulated_env, tmp_path, batch_client
):
    work = write_workflow(tmp_path / "diskfull", """
        rule all:
            input: "big.txt", "small.txt", "plain.txt"
        rule big:
            output: "big.txt"
            resources: disk_mb=10**9
            shell: "touch {output}"
        rule small:
            output: "small.txt"
            resources: disk_mb=10
            shell: "echo ok > {output}"
        rule plain:
            output: "plain.txt"
            shell: "echo ok > {output}"
    """)
    started = time.monotonic()
    run = subprocess.run(snakemake_cmd(work, "--keep-going"), cwd=work, capture_output=True,
                         text=True, timeout=300)
    elapsed = time.monotonic() - started
    out = run.stdout + run.stderr
    assert run.returncode != 0, out[-3000:]

    # One warning before the first SubmitJob, naming the rule, its disk_mb and the volume
    # (from the launch template of the emulation's compute environment).
    warning = next(line for line in out.splitlines() if "asks for disk_mb=" in line)
    assert "Rule 'big' asks for disk_mb=1000000000 (931323 GiB)" in warning
    assert "the instances of queue 'local-cpu' have 100 GiB (launch template lt-" in warning
    assert "of compute environment 'local-cpu-ce')" in warning
    assert out.count("Rule 'big' asks for disk_mb=") == 1
    assert "Rule 'small' asks" not in out and "Rule 'plain' asks" not in out
    assert out.index(warning) < out.index("rule big:")  # before Snakemake runs any job

    # The job of `big` stopped before the rule ran, and said why; the failure shows it.
    assert (
        f"{DISK_GUARD_MARK} rule 'big' asks for disk_mb=1000000000 (1,000,000,000 MB), but "
        "its working directory" in out
    )
    # Its log: the check's message and nothing else (Snakemake never started in the job).
    [log] = (work / ".snakemake/awsbatch-mpi/logs").glob("big-*.log")
    assert DISK_GUARD_MARK in log.read_text() and "Building DAG" not in log.read_text()
    jobs = {j["tags"]["snakemake-rule"]: j
            for j in jobs_with_tag(batch_client, "snakemake-workflow", "diskfull")}
    assert {rule: j["status"] for rule, j in jobs.items()} == {
        "big": "FAILED", "small": "SUCCEEDED", "plain": "SUCCEEDED",
    }
    assert "exit code 28" in out
    headline = next(line for line in out.splitlines() if "stopped at its start" in line)
    assert headline.strip().removeprefix("message: ").startswith(
        f"AWS Batch job {jobs['big']['jobId']} of rule 'big' stopped at its start: rule 'big' "
        "asks for disk_mb=1000000000"
    )
    s3 = boto3.client("s3")
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=LOCAL_BUCKET,
                                                  Prefix="diskfull/")["Contents"]}
    assert {"diskfull/small.txt", "diskfull/plain.txt"} <= keys
    assert "diskfull/big.txt" not in keys
    # Fails fast: the check runs before Snakemake deploys the sources.
    print(f"big ran {_seconds(jobs['big']):.2f} s, small {_seconds(jobs['small']):.2f} s, "
          f"whole run {elapsed:.1f} s ({datetime.now():%H:%M:%S})")
    assert _seconds(jobs["big"]) < _seconds(jobs["small"])


@pytest.mark.skipif(not shutil.which("mpirun"), reason="Open MPI (mpirun) is not installed")
def test_a_multi_node_job_checks_its_disk_on_the_main_node(emulated_env, tmp_path, batch_client):
    work = write_workflow(tmp_path / "diskmpi", """
        rule md:
            output: "md.txt"
            resources: mpi="mpirun", tasks=2, nodes=2, disk_mb=10**9
            shell: "{resources.mpi} -n {resources.tasks} hostname > {output}"
    """)
    run = subprocess.run(
        snakemake_cmd(work, "--awsbatch-mpi-multinode-job-queue", "local-mpi"),
        cwd=work, capture_output=True, text=True, timeout=300,
    )
    out = run.stdout + run.stderr
    assert run.returncode != 0, out[-3000:]
    assert out.count("Rule 'md' asks for disk_mb=1000000000") == 1  # the warning, once
    headline = next(line for line in out.splitlines() if "stopped at its start" in line)
    assert "of rule 'md' stopped at its start: rule 'md' asks for disk_mb=1000000000" in headline
    [job] = jobs_with_tag(batch_client, "snakemake-workflow", "diskmpi", queues=("local-mpi",))
    assert job["status"] == "FAILED"
    print(f"multi-node job ran {_seconds(job):.2f} s")
