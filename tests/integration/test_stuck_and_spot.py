"""When AWS says no (issue 19): a queue that cannot place jobs, Spot capacity that is gone.

Snakemake itself runs through the plugin against the emulation, which produces each situation.
"""

from __future__ import annotations

import subprocess
import time

import pytest

from snakemake_executor_plugin_awsbatch_mpi.local.faults import invalid_compute_environment

from .conftest import jobs_with_tag
from .test_executor import snakemake_cmd, write_workflow

pytestmark = pytest.mark.integration


def own_queue(emulation, batch, name: str, capacity: str = "EC2") -> str:
    """A queue with one compute environment `<name>-ce` of its own (idempotent)."""
    if batch.describe_job_queues(jobQueues=[name])["jobQueues"]:
        return name
    resources = {
        "type": capacity, "minvCpus": 0, "maxvCpus": 64, "instanceTypes": ["c5"],
        "subnets": [emulation.subnet_id], "securityGroupIds": [emulation.security_group_id],
        "instanceRole": emulation.instance_profile_arn,
    }
    if capacity == "SPOT":
        resources["bidPercentage"] = 60
    ce = batch.create_compute_environment(
        computeEnvironmentName=f"{name}-ce", type="MANAGED", state="ENABLED",
        serviceRole=emulation.service_role_arn, computeResources=resources,
    )["computeEnvironmentArn"]
    batch.create_job_queue(jobQueueName=name, state="ENABLED", priority=1,
                           computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce}])
    return name


def poll(what: str, timeout: float, ready):
    deadline = time.monotonic() + timeout
    while not (found := ready()):
        assert time.monotonic() < deadline, what
        time.sleep(1)  # each look lists every queue: ~50 Batch calls, the quota of a second
    return found


def workflow_jobs(batch, workflow: str) -> list[dict]:
    return jobs_with_tag(batch, "snakemake-workflow", workflow, queues=None)


def test_stuck_queue_is_named_once_with_batchs_reasons_and_the_job_is_not_cancelled(
    emulated_env, tmp_path, batch_client
):
    queue = own_queue(emulated_env, batch_client, "stuck-cpu")
    work = write_workflow(tmp_path / "stuckq", """
        rule all:
            input: "b.txt"
        rule a:
            output: "a.txt"
            # Long enough to be seen RUNNING by a poll once a second: a job reaches its
            # rule 1.5 s after it starts (one interpreter), so `sleep 1` ended too soon.
            shell: "sleep 5; echo a > {output}"
        rule b:
            input: "a.txt"
            output: "b.txt"
            shell: "cat {input} > {output}"
    """)
    cmd = snakemake_cmd(work, "--awsbatch-mpi-runnable-warning", "0.05")  # 3 seconds
    cmd[cmd.index("local-cpu")] = queue
    log = work / "snakemake.out"
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=work, stdout=out, stderr=subprocess.STDOUT, text=True)
    try:
        # The start-up checks refuse an INVALID environment: it breaks once the run is going.
        poll("rule a never ran", 90, lambda: any(
            j["status"] == "RUNNING" for j in workflow_jobs(batch_client, "stuckq")))
        with invalid_compute_environment(f"{queue}-ce", "CLIENT_ERROR - instance role gone"):
            poll("no warning about the stuck queue", 90,
                 lambda: "has been RUNNABLE" in log.read_text())
            time.sleep(5)  # five more status checks while the job is still stuck
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert proc.returncode == 0, text[-3000:]
    assert text.count("has been RUNNABLE") == 1, text
    warning = next(line for line in text.splitlines() if "has been RUNNABLE" in line)
    assert "Queue 'stuck-cpu': Batch job" in warning and "of rule 'b'" in warning
    assert "more than 0.05 minute(s)" in warning
    assert ("Batch says: ACTION_REQUIRED - CE(s) associated with the job queue are invalid. "
            "Compute environments:" in warning)
    assert "'stuck-cpu-ce' ENABLED and INVALID (CLIENT_ERROR - instance role gone)" in warning
    assert "an instance type fits the job (up to c5)" in warning
    assert "setup --runnable-timeout" in warning
    jobs = {j["tags"]["snakemake-rule"]: j for j in workflow_jobs(batch_client, "stuckq")}
    assert jobs["b"]["status"] == "SUCCEEDED" and len(jobs["b"]["attempts"]) == 1


def test_job_whose_spot_capacity_is_gone_runs_once_more_on_demand_other_failures_do_not(
    emulated_env, tmp_path, batch_client, capsys
):
    from snakemake_executor_plugin_awsbatch_mpi.local.faults import reclaim_every_attempt

    spot = own_queue(emulated_env, batch_client, "spot-gone-cpu", capacity="SPOT")
    work = write_workflow(tmp_path / "spotgone", """
        rule all:
            input: "lost.txt", "broken.txt"
        rule lost:
            output: "lost.txt"
            shell: "echo survived > {output}"
        rule broken:
            output: "broken.txt"
            shell: "exit 3"
    """)
    cmd = snakemake_cmd(work, "--keep-going", "--awsbatch-mpi-batch-attempts", "2",
                        "--awsbatch-mpi-fallback-job-queue", "local-cpu")
    cmd[cmd.index("local-cpu")] = spot
    with reclaim_every_attempt("lost"):
        run = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=300)
    out = run.stdout + run.stderr
    assert run.returncode != 0  # rule broken failed, and only it
    jobs = workflow_jobs(batch_client, "spotgone")
    by_rule: dict[str, list[dict]] = {}
    for job in sorted(jobs, key=lambda j: j["createdAt"]):
        by_rule.setdefault(job["tags"]["snakemake-rule"], []).append(job)
    first, again = by_rule["lost"]
    assert first["jobQueue"].endswith("/" + spot) and first["status"] == "FAILED"
    assert [a["statusReason"][:8] for a in first["attempts"]] == ["Host EC2"] * 2
    assert again["jobQueue"].endswith("/local-cpu") and again["status"] == "SUCCEEDED"
    assert again["tags"]["snakemake-fallback-of"] == first["jobId"]
    assert (f"Rule 'lost': Batch job {first['jobId']} lost its Spot instance on its last "
            "attempt (Host EC2") in out
    assert (f"submitted it once more to the on-demand queue 'local-cpu' as Batch job "
            f"{again['jobId']}.") in out
    [broken] = by_rule["broken"]  # an application failure is not resubmitted
    assert broken["status"] == "FAILED" and broken["jobQueue"].endswith("/" + spot)
    assert "The command of rule 'broken' exited with code 3" in out
    assert "1 failed, 1 retried by Batch (2 Spot reclaim(s)), 1 resubmitted to the on-demand " \
           "fallback queue" in out
    # `awsbatch-mpi plan` showed this very request: same queue, sizes, definition, tag keys
    import json

    from snakemake_executor_plugin_awsbatch_mpi import cli

    plan_file = tmp_path / "plan.json"
    code = cli.main(["plan", "-s", str(work / "Snakefile"), "-d", str(work),
                     "--job-queue", spot, "--fallback-job-queue", "local-cpu",
                     "--out", str(plan_file)])
    capsys.readouterr()
    assert code == 0
    [planned] = [j["fallbackSubmitJob"] for j in json.loads(plan_file.read_text())["jobs"]
                 if j["rule"] == "lost"]
    assert again["jobQueue"].endswith("/" + planned["jobQueue"])
    definition = again["jobDefinition"].rsplit("/", 1)[-1].split(":")[0]
    assert definition == planned["jobDefinition"]
    requirements = {r["type"]: r["value"] for r in again["container"]["resourceRequirements"]}
    assert requirements == {r["type"]: r["value"]
                            for r in planned["containerOverrides"]["resourceRequirements"]}
    assert set(again["tags"]) == set(planned["tags"])


def test_downstream_rule_with_a_spot_fallback_queue_is_refused_before_any_submission(
    emulated_env, tmp_path, batch_client
):
    from .test_validation import run_refused

    spot = own_queue(emulated_env, batch_client, "spot-gone-cpu", capacity="SPOT")
    out = run_refused(tmp_path, "spotfallback", f"""
    resources: awsbatch_fallback_queue="{spot}"
    shell: "touch {{output}}"
""")
    assert f"Rule 'bad': resource awsbatch_fallback_queue='{spot}'" in out
    assert "has Spot compute environments" in out and "Nothing was submitted." in out


def test_immediate_submit_says_the_fallback_queue_is_not_used(emulated_env, tmp_path,
                                                             batch_client):
    work = write_workflow(tmp_path / "immfallback", """
        rule one:
            output: "one.txt"
            shell: "echo 1 > {output}"
    """)
    run = subprocess.run(
        snakemake_cmd(work, "--immediate-submit", "--notemp",
                      "--awsbatch-mpi-fallback-job-queue", "local-cpu"),
        cwd=work, capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr[-3000:]
    assert ("--awsbatch-mpi-fallback-job-queue is not used with --immediate-submit"
            in run.stderr)
    poll("the job never finished", 90, lambda: [
        j["status"] for j in workflow_jobs(batch_client, "immfallback")] == ["SUCCEEDED"])
