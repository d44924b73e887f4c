"""Snakemake itself, through the plugin, against the local emulation (real processes)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import boto3
import pytest
from snakemake.common.tests import TestWorkflowsMinioPlayStorageBase

from snakemake_executor_plugin_awsbatch_mpi import ExecutorSettings
from snakemake_executor_plugin_awsbatch_mpi.batch.client import BatchClient
from snakemake_executor_plugin_awsbatch_mpi.batch.model import validate_request
from snakemake_executor_plugin_awsbatch_mpi.local import LOCAL_BUCKET

from .conftest import jobs_with_tag, wait_for_jobs, with_array_children

pytestmark = pytest.mark.integration

SENT: list[tuple[str, dict]] = []


@pytest.fixture
def record_requests(monkeypatch):
    """Validate every request the plugin sends against botocore's model and Batch's limits."""
    SENT.clear()
    original = BatchClient._call
    operations = {
        "submit_job": "SubmitJob",
        "register_job_definition": "RegisterJobDefinition",
        "describe_jobs": "DescribeJobs",
        "terminate_job": "TerminateJob",
    }

    def spy(self, operation, **kwargs):
        if operation in operations:
            problems = validate_request(operations[operation], kwargs)
            assert problems == [], f"{operation}: {problems}"
        SENT.append((operation, kwargs))
        return original(self, operation, **kwargs)

    monkeypatch.setattr(BatchClient, "_call", spy)
    return SENT


class TestWorkflows(TestWorkflowsMinioPlayStorageBase):
    """Snakemake's own `simple` and `groups` workflows, plus assertions on what Batch got."""

    __test__ = True

    @pytest.fixture(autouse=True)
    def _setup(self, emulated_env, record_requests):
        self.emu = emulated_env
        self.started = time.time() * 1000
        yield
        self.check_batch_requests()

    def get_executor(self) -> str:
        return "awsbatch-mpi"

    def get_executor_settings(self):
        return ExecutorSettings(job_queue="local-cpu", gpu_job_queue="local-gpu")

    def get_assume_shared_fs(self) -> bool:
        return False

    @property
    def endpoint_url(self):
        return self.emu.endpoint_url

    @property
    def access_key(self):
        return "testing"

    @property
    def secret_key(self):
        return "testing-secret-of-the-submitter"

    def get_remote_execution_settings(self):
        from snakemake.settings.types import RemoteExecutionSettings

        return RemoteExecutionSettings(seconds_between_status_checks=1)

    def check_batch_requests(self):
        submits = [kw for op, kw in SENT if op == "submit_job"]
        registers = [kw for op, kw in SENT if op == "register_job_definition"]
        assert submits, "no job was submitted"
        # one shape → at most one definition for the whole run
        assert len(registers) <= 1
        assert len({s["jobDefinition"] for s in submits}) == 1
        for submit in submits:
            text = repr(submit)
            assert self.secret_key not in text, "the submitter's secret reached Batch"
            assert submit["containerOverrides"]["command"][:2] == ["/bin/bash", "-c"]
            tags = submit["tags"]
            assert {"snakemake-run-id", "snakemake-rule", "snakemake-workflow"} <= set(tags)
        by_rule = {s["tags"]["snakemake-rule"]: s for s in submits}
        if "b" in by_rule:  # `simple`: rule b has threads: 2, rule c mem="5MB"
            # The test base runs with --cores 1, which caps every job's threads at 1
            # (Snakemake's semantics); test_simple_workflow_cli checks the uncapped 2 vCPU.
            reqs = by_rule["b"]["containerOverrides"]["resourceRequirements"]
            assert {"type": "VCPU", "value": "1"} in reqs
            creqs = by_rule["c"]["containerOverrides"]["resourceRequirements"]
            assert {"type": "MEMORY", "value": "256"} in creqs
        batch = boto3.client("batch")
        run_id = submits[0]["tags"]["snakemake-run-id"]
        statuses = [j["status"] for j in jobs_with_tag(batch, "snakemake-run-id", run_id)]
        assert statuses and set(statuses) == {"SUCCEEDED"}


def write_workflow(path: Path, snakefile: str) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "Snakefile").write_text(textwrap.dedent(snakefile))
    return path


def snakemake_cmd(workdir: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "snakemake",
        "--executor", "awsbatch-mpi",
        "--awsbatch-mpi-job-queue", "local-cpu",
        "--default-storage-provider", "s3",
        "--default-storage-prefix", f"s3://{LOCAL_BUCKET}/{workdir.name}",
        "--jobs", "4",
        "--seconds-between-status-checks", "1",
        "--latency-wait", "2",
        *extra,
    ]


def test_simple_workflow_cli(emulated_env, tmp_path, record_requests):
    """Snakemake's `simple` workflow from the command line: sizes reach Batch unchanged."""
    import shutil

    from snakemake.common.tests import testcases

    work = tmp_path / "simplecli"
    shutil.copytree(Path(testcases.__file__).parent / "simple", work)
    run = subprocess.run(snakemake_cmd(work), cwd=work, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    batch = boto3.client("batch")
    jobs = {j["tags"]["snakemake-rule"]: j
            for j in jobs_with_tag(batch, "snakemake-workflow", "simplecli")}
    assert set(jobs) == {"a", "b", "c", "d"}
    assert {j["status"] for j in jobs.values()} == {"SUCCEEDED"}
    reqs = {r["type"]: r["value"] for r in jobs["b"]["container"]["resourceRequirements"]}
    assert reqs["VCPU"] == "2"
    creqs = {r["type"]: r["value"] for r in jobs["c"]["container"]["resourceRequirements"]}
    assert creqs["MEMORY"] == "256"  # mem="5MB" raised to the floor
    s3 = boto3.client("s3")
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=LOCAL_BUCKET,
                                                  Prefix="simplecli/")["Contents"]}
    assert {"simplecli/test3.out", "simplecli/res/somedir2/subdir.out"} <= keys
    # every job ran once: no warning about retries that never happened. Rule d's two jobs
    # became ready together and went as one array job (the default): look at its children.
    size = (jobs["d"].get("arrayProperties") or {}).get("size")
    assert size == 2
    children = batch.describe_jobs(jobs=[f"{jobs['d']['jobId']}:{i}" for i in range(size)])
    ran = [j for r, j in jobs.items() if r != "d"] + children["jobs"]
    assert len(ran) == 5 and all(len(j["attempts"]) == 1 for j in ran)
    assert "Batch retries it" not in run.stdout + run.stderr


def test_threads_0_runs_with_one_vcpu(emulated_env, tmp_path):
    """Snakemake's own test_threads0: `threads: 0` is a valid rule; Batch gives it 1 vCPU."""
    work = write_workflow(tmp_path / "threads0", """
        rule a:
            output: "test.out"
            threads: 0
            shell: "echo {threads} > {output}"
    """)
    run = subprocess.run(snakemake_cmd(work), cwd=work, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    [job] = jobs_with_tag(boto3.client("batch"), "snakemake-workflow", "threads0")
    reqs = {r["type"]: r["value"] for r in job["container"]["resourceRequirements"]}
    assert reqs["VCPU"] == "1"
    body = boto3.client("s3").get_object(Bucket=LOCAL_BUCKET, Key="threads0/test.out")["Body"]
    assert body.read().decode().strip() == "0"


def test_failing_rule_reports_exit_code_and_log_tail(emulated_env, tmp_path):
    work = write_workflow(tmp_path / "failing", """
        rule fail:
            output: "never.txt"
            shell: "echo 'about to fail: bad input'; exit 3"
    """)
    run = subprocess.run(snakemake_cmd(work), cwd=work, capture_output=True, text=True,
                         timeout=180)
    out = run.stdout + run.stderr
    assert run.returncode != 0
    # Batch sees Snakemake's exit code (1); the rule's own code comes from the log
    assert "exit code 1" in out
    assert "rule 'fail'" in out
    assert "returned non-zero exit status 3" in out  # the log tail
    assert "console.aws.amazon.com/batch" in out
    logs = list((work / ".snakemake/awsbatch-mpi/logs").glob("fail-*.log"))
    assert len(logs) == 1 and "about to fail: bad input" in logs[0].read_text()
    # the headline leads with the rule's own code and the saved log; Batch's 1 comes later
    headline = next(line for line in out.splitlines() if "exited with code" in line)
    assert "The command of rule 'fail' exited with code 3" in headline
    assert str(logs[0].relative_to(work)) in headline
    assert out.index(headline) < out.index("exit code 1")
    assert "raise mem_mb" not in out and "Batch retries it" not in out


def test_sigkill_is_not_reported_as_out_of_memory(emulated_env, tmp_path):
    """Exit code 137 without Batch's OutOfMemoryError is a plain SIGKILL: no mem_mb advice."""
    work = write_workflow(tmp_path / "sigkilled", """
        rule killed:
            output: "never.txt"
            shell: "echo 'killing the whole container'; kill -9 0"
    """)
    run = subprocess.run(snakemake_cmd(work), cwd=work, capture_output=True, text=True,
                         timeout=180)
    out = run.stdout + run.stderr
    assert run.returncode != 0
    assert "of rule 'killed' was killed with SIGKILL (exit code 137)" in out, out[-3000:]
    assert "neither Batch's timeout nor its out-of-memory kill" in out
    assert "raise mem_mb" not in out and "out of memory" not in out


def test_bad_resource_stops_before_any_submission(emulated_env, tmp_path, batch_client):
    work = write_workflow(tmp_path / "badres", """
        rule all:
            input: "bad.txt"
        rule ok:
            output: "ok.txt"
            shell: "touch {output}"
        rule bad:
            input: "ok.txt"
            output: "bad.txt"
            resources: gpu="two"
            shell: "touch {output}"
    """)
    run = subprocess.run(snakemake_cmd(work), cwd=work, capture_output=True, text=True,
                         timeout=120)
    out = run.stdout + run.stderr
    assert run.returncode != 0
    assert "Rule 'bad'" in out and "gpu='two'" in out and "whole number" in out
    assert jobs_with_tag(batch_client, "snakemake-workflow", "badres") == []


def test_ctrl_c_terminates_every_job(emulated_env, tmp_path, batch_client):
    work = write_workflow(tmp_path / "cancelme", """
        rule all:
            input: expand("s{i}.txt", i=range(3))
        rule sleepy:
            output: "s{i}.txt"
            shell: "sleep 300; touch {output}"
    """)
    # A shell without job control starts background commands with SIGINT ignored, and
    # Python then never raises KeyboardInterrupt: give Snakemake the default handling, as
    # in a terminal, whatever way the test suite itself was started.
    proc = subprocess.Popen(snakemake_cmd(work), cwd=work, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    # The three jobs go as one array job (the default): Ctrl-C terminates each child.
    def children_running(jobs):
        children = with_array_children(batch_client, jobs)
        return sum(j["status"] == "RUNNING" for j in children) == 3

    try:
        wait_for_jobs(batch_client, "cancelme", children_running, 90, "jobs never started")
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=90)
    finally:  # never leave 5-minute jobs behind for the tests that follow
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        for job in jobs_with_tag(batch_client, "snakemake-workflow", "cancelme"):
            if job["status"] not in ("SUCCEEDED", "FAILED"):
                batch_client.terminate_job(jobId=job["jobId"], reason="test cleanup")
    assert "Terminated 3 AWS Batch job(s)" in out
    wait_for_jobs(batch_client, "cancelme",
                  lambda jobs: {j["status"] for j in jobs} == {"FAILED"},
                  30, "jobs not terminated")
    stopped = with_array_children(
        batch_client, jobs_with_tag(batch_client, "snakemake-workflow", "cancelme")
    )
    assert len(stopped) == 3 and {j["status"] for j in stopped} == {"FAILED"}
    # stopped by the plugin, not by the clean-up above (Batch keeps the first reason)
    assert all(j["statusReason"].startswith("Cancelled by Snakemake") for j in stopped), stopped
    assert emulated_env.running_containers() == 0


def test_throttling_is_survived(emulated_env, tmp_path, monkeypatch):
    """30 % of Batch API answers are throttling errors: the run still succeeds."""
    from snakemake_executor_plugin_awsbatch_mpi.local.faults import throttle_batch_api

    work = write_workflow(tmp_path / "throttled", """
        rule all:
            input: expand("t{i}.txt", i=range(3))
        rule t:
            output: "t{i}.txt"
            shell: "echo {wildcards.i} > {output}"
    """)
    with throttle_batch_api(emulated_env, fraction=0.3) as counter:
        run = subprocess.run(snakemake_cmd(work), cwd=work, capture_output=True, text=True,
                             timeout=240, env=os.environ.copy())
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert counter["throttled"] > 0
    s3 = boto3.client("s3")
    body = s3.get_object(Bucket=LOCAL_BUCKET, Key="throttled/t2.txt")["Body"].read()
    assert body == b"2\n"


def test_job_forgotten_by_batch_ends_as_error(emulated_env, tmp_path, batch_client):
    """A job that Batch stops returning is reported after a bounded number of checks."""
    from moto.batch.models import batch_backends

    work = write_workflow(tmp_path / "forgotten", """
        rule lost:
            output: "lost.txt"
            shell: "sleep 60; touch {output}"
    """)
    proc = subprocess.Popen(snakemake_cmd(work), cwd=work, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    jobs = wait_for_jobs(batch_client, "forgotten", bool, 60, "the job was never submitted")
    job_id = jobs[0]["jobId"]
    batch_client.terminate_job(jobId=job_id, reason="test cleanup")
    for backend in batch_backends.values():
        for region_backend in backend.values():
            region_backend._jobs.pop(job_id, None)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert f"AWS Batch no longer knows job {job_id}" in out


def test_spot_reclaim_is_retried_by_batch_and_reported(emulated_env, tmp_path, batch_client):
    from snakemake_executor_plugin_awsbatch_mpi.local.faults import reclaim_first_attempt

    work = write_workflow(tmp_path / "spotted", """
        rule reclaimed:
            output: "r.txt"
            shell: "echo ok > {output}"
    """)
    with reclaim_first_attempt("reclaimed"):
        run = subprocess.run(snakemake_cmd(work), cwd=work, capture_output=True, text=True,
                             timeout=180)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "attempt 1 of Batch job" in run.stderr and "Host EC2" in run.stderr
    assert "without using Snakemake's --retries" in run.stderr
    # one warning, for the reclaimed attempt only: the successful second one is no retry
    assert run.stderr.count("Batch retries it by itself") == 1
    [job] = jobs_with_tag(batch_client, "snakemake-workflow", "spotted")
    assert len(job["attempts"]) == 2 and job["status"] == "SUCCEEDED"


def test_preflight_refuses_a_disabled_queue(emulated_env, tmp_path, batch_client):
    """The executor checks its queues at start-up: jobs that can never run are not sent."""
    cpu = batch_client.describe_job_queues(jobQueues=["local-cpu"])["jobQueues"][0]
    if not batch_client.describe_job_queues(jobQueues=["switched-off"])["jobQueues"]:
        batch_client.create_job_queue(
            jobQueueName="switched-off", state="DISABLED", priority=1,
            computeEnvironmentOrder=cpu["computeEnvironmentOrder"],
        )
    work = write_workflow(tmp_path / "offqueue", """
        rule x:
            output: "x.txt"
            shell: "touch {output}"
    """)
    cmd = snakemake_cmd(work)
    cmd[cmd.index("local-cpu")] = "switched-off"
    run = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=120)
    assert run.returncode != 0
    assert "nothing was submitted" in run.stderr and "switched-off" in run.stderr
    assert "Job queue 'switched-off' is DISABLED" in run.stderr
    assert "awsbatch-mpi doctor" in run.stderr


def test_a_rule_with_a_local_input_is_said_to_run_here_once(emulated_env, tmp_path, batch_client):
    """Snakemake runs a job with a local() file on this machine, never through the executor:
    the plugin says so once per rule, naming the file, instead of letting it happen silently."""
    work = write_workflow(tmp_path / "localin", """
        rule all:
            input: expand("out{i}.txt", i=[1, 2])
        rule copy:
            input: local("ref.txt")
            output: "out{i}.txt"
            shell: "cp {input} {output}"
    """)
    (work / "ref.txt").write_text("reference\n")
    run = subprocess.run(snakemake_cmd(work), cwd=work, capture_output=True, text=True,
                         timeout=300)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-3000:]
    notice = ("Rule 'copy' has the local() input 'ref.txt': Snakemake runs its jobs on this "
              "machine, not on AWS Batch. Remove local() to run it on Batch")
    assert out.count(notice) == 1, out[-3000:]
    assert jobs_with_tag(batch_client, "snakemake-workflow", "localin") == []
