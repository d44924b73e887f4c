"""Dependencies handed to Batch, array jobs and resume, through Snakemake on the emulation."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time

import boto3
import pytest

from snakemake_executor_plugin_awsbatch_mpi.local import LOCAL_BUCKET

from .conftest import jobs_with_tag, wait_for_jobs
from .test_executor import snakemake_cmd, write_workflow

pytestmark = pytest.mark.integration
DONE = ("SUCCEEDED", "FAILED")


def wait_all_done(batch, workflow: str, timeout: float = 300) -> list[dict]:
    return wait_for_jobs(
        batch, workflow, lambda jobs: bool(jobs) and all(j["status"] in DONE for j in jobs),
        timeout, "jobs still running",
    )


def read(s3, key: str) -> str:
    return s3.get_object(Bucket=LOCAL_BUCKET, Key=key)["Body"].read().decode()


def test_immediate_submit_runs_diamond_and_wide_fan_in_inside_batch(
    emulated_env, tmp_path, batch_client
):
    work = write_workflow(tmp_path / "dagbatch", """
        rule all:
            input: "d.txt", "gathered.txt"
        rule a:
            output: "a.txt"
            shell: "echo a > {output}"
        rule b:
            input: "a.txt"
            output: "b.txt"
            shell: "cat {input} > {output}; echo b >> {output}"
        rule c:
            input: "a.txt"
            output: "c.txt"
            shell: "cat {input} > {output}; echo c >> {output}"
        rule d:
            input: "b.txt", "c.txt"
            output: "d.txt"
            shell: "cat {input} > {output}"
        rule part:
            output: "parts/{i}.txt"
            shell: "echo {wildcards.i} > {output}"
        rule gather:
            input: expand("parts/{i}.txt", i=range(45))
            output: "gathered.txt"
            shell: "cat {input} > {output}"
    """)
    start = time.time()
    client = subprocess.run(
        # Array jobs off: as one array the 45 parts would be a single dependency of gather,
        # and this test is about fan-ins wider than Batch's 20 (the barrier tree).
        snakemake_cmd(work, "--immediate-submit", "--notemp", "--jobs", "100",
                      "--awsbatch-mpi-array-jobs", "none"),
        cwd=work, capture_output=True, text=True, timeout=300,
    )
    assert client.returncode == 0, client.stderr[-3000:]
    client_seconds = time.time() - start
    # The client is gone; Batch runs the DAG on its own.
    jobs = wait_all_done(batch_client, "dagbatch", timeout=400)
    assert {j["status"] for j in jobs} == {"SUCCEEDED"}
    by_rule: dict[str, list[dict]] = {}
    for job in jobs:
        by_rule.setdefault(job["tags"]["snakemake-rule"], []).append(job)
    barriers = [j for j in jobs if j["tags"].get("snakemake-barrier") == "true"]
    assert len(barriers) >= 3  # 45 producers need at least three barriers (<= 20 each)
    for job in jobs:
        assert len(job.get("dependsOn", [])) <= 20
    gather = [j for j in by_rule["gather"] if j["tags"].get("snakemake-barrier") != "true"]
    assert gather[0]["dependsOn"], "gather must wait for its inputs inside Batch"
    d_deps = {dep["jobId"] for dep in by_rule["d"][0]["dependsOn"]}
    assert d_deps == {by_rule["b"][0]["jobId"], by_rule["c"][0]["jobId"]}
    last_stop = max(j["stoppedAt"] for j in jobs) / 1000
    assert last_stop - start > client_seconds  # work went on after the client left
    s3 = boto3.client("s3")
    assert read(s3, "dagbatch/d.txt") == "a\nb\na\nc\n"
    assert read(s3, "dagbatch/gathered.txt") == "".join(f"{i}\n" for i in range(45))


def test_failed_upstream_fails_its_dependents(emulated_env, tmp_path, batch_client):
    work = write_workflow(tmp_path / "depfail", """
        rule all:
            input: "b.txt"
        rule a:
            output: "a.txt"
            shell: "exit 5"
        rule b:
            input: "a.txt"
            output: "b.txt"
            shell: "cp {input} {output}"
    """)
    client = subprocess.run(snakemake_cmd(work, "--immediate-submit", "--notemp"),
                            cwd=work, capture_output=True, text=True, timeout=120)
    assert client.returncode == 0
    jobs = {j["tags"]["snakemake-rule"]: j for j in wait_all_done(batch_client, "depfail")}
    assert jobs["a"]["status"] == "FAILED"
    assert jobs["b"]["status"] == "FAILED"
    assert "Dependent" in jobs["b"].get("statusReason", "")
    # The detached run can be followed and inspected from the command line.
    run_id = re.search(r"snakemake-run-id=(\w+)", client.stderr).group(1)
    cli = [sys.executable, "-m", "snakemake_executor_plugin_awsbatch_mpi.cli"]
    status = subprocess.run([*cli, "status", "--run", run_id], cwd=work, capture_output=True,
                            text=True, timeout=60)
    assert status.returncode == 1  # a job failed
    rows = {line.split()[0]: line.split() for line in status.stdout.splitlines()[2:]}
    assert rows["a"][-1] == "1" and rows["b"][-1] == "1" and rows["all"][-1] == "2"
    elsewhere = subprocess.run([*cli, "status", "--run", run_id, "--job-queue", "local-cpu"],
                               cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert elsewhere.stdout == status.stdout  # found by scanning the queue for the tag
    logs = subprocess.run([*cli, "logs", jobs["a"]["jobId"]], capture_output=True, text=True,
                          timeout=60)
    assert logs.returncode == 0 and "non-zero exit status 5" in logs.stdout


def test_array_job_of_50_children(emulated_env, tmp_path, batch_client):
    work = write_workflow(tmp_path / "arrays50", """
        rule all:
            input: expand("sq/{i}.txt", i=range(50))
        rule square:
            output: "sq/{i}.txt"
            resources: mem_mb=500
            shell: "echo $(( {wildcards.i} * {wildcards.i} )) > {output}"
    """)
    run = subprocess.run(
        snakemake_cmd(work, "--awsbatch-mpi-array-jobs", "all", "--jobs", "60"),
        cwd=work, capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    jobs = jobs_with_tag(batch_client, "snakemake-workflow", "arrays50")
    parents = [j for j in jobs if "arrayProperties" in j and "index" not in j["arrayProperties"]]
    assert len(parents) == 1 and parents[0]["arrayProperties"]["size"] == 50
    assert "Submitted 50 jobs of rule 'square' as array job" in run.stderr
    s3 = boto3.client("s3")
    for i in range(50):
        assert read(s3, f"arrays50/sq/{i}.txt") == f"{i * i}\n"


def test_a_failing_child_fails_alone_and_is_retried_by_snakemake(
    emulated_env, tmp_path, batch_client
):
    """Arrays by default: four ready jobs go as one array; child 2 fails on its first
    attempt, is reported with its own log and retried (--retries) as a plain job, the other
    children succeed on their own, and the report has one row per child."""
    work = write_workflow(tmp_path / "arrayretry", """
        rule all:
            input: expand("out/{i}.txt", i=range(4))
        rule flaky:
            output: "out/{i}.txt"
            resources: mem_mb=500, tries=lambda wildcards, attempt: attempt
            shell: "[ {wildcards.i} != 2 ] || [ {resources.tries} -gt 1 ] || exit 7; "
                   "echo {wildcards.i}-{resources.tries} > {output}"
    """)
    run = subprocess.run(
        snakemake_cmd(work, "--retries", "1"),
        cwd=work, capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Submitted 4 jobs of rule 'flaky' as array job" in run.stderr
    assert re.search(r"exit code 7|exit status 7", run.stderr), run.stderr[-3000:]
    s3 = boto3.client("s3")
    assert [read(s3, f"arrayretry/out/{i}.txt") for i in range(4)] == [
        "0-1\n", "1-1\n", "2-2\n", "3-1\n"
    ]
    jobs = jobs_with_tag(batch_client, "snakemake-workflow", "arrayretry")
    parents = [j for j in jobs if (j.get("arrayProperties") or {}).get("size")]
    plain = [j for j in jobs if "arrayProperties" not in j]
    assert len(parents) == 1 and len(plain) == 1  # the retry went as a plain job
    # The report: one row per child (the parent is not a row) and the plain retry.
    assert re.search(r"Run \w+: 5 job\(s\), 1 failed;", run.stderr), run.stderr[-2000:]


def test_restarted_client_picks_up_running_jobs(emulated_env, tmp_path, batch_client):
    work = write_workflow(tmp_path / "resumed", """
        rule all:
            input: "slow.txt"
        rule slow:
            output: "slow.txt"
            shell: "sleep 8; echo done > {output}"
    """)
    first = subprocess.Popen(snakemake_cmd(work), cwd=work, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    wait_for_jobs(batch_client, "resumed", lambda jobs: any(j["status"] == "RUNNING"
                                                             for j in jobs), 60, "never ran")
    first.send_signal(signal.SIGKILL)  # the laptop went away; no chance to cancel
    first.wait()
    subprocess.run(snakemake_cmd(work, "--unlock"), cwd=work, check=True,
                   capture_output=True, timeout=120)
    second = subprocess.run(snakemake_cmd(work), cwd=work,
                            capture_output=True, text=True, timeout=180)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "picking up Batch job" in second.stderr
    jobs = jobs_with_tag(batch_client, "snakemake-workflow", "resumed")
    assert len(jobs) == 1, "the job was submitted twice"
    assert read(boto3.client("s3"), "resumed/slow.txt") == "done\n"


def test_immediate_submit_refuses_local_rules_before_submitting(emulated_env, tmp_path,
                                                                batch_client):
    work = write_workflow(tmp_path / "localprep", """
        localrules: prep
        rule all:
            input: "b.txt"
        rule prep:
            output: "a.txt"
            shell: "echo a > {output}"
        rule b:
            input: "a.txt"
            output: "b.txt"
            shell: "cp {input} {output}"
    """)
    run = subprocess.run(snakemake_cmd(work, "--immediate-submit", "--notemp"), cwd=work,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode != 0
    assert "local rule(s) prep" in run.stderr and "Run without --immediate-submit" in run.stderr
    assert jobs_with_tag(batch_client, "snakemake-workflow", "localprep") == []
