"""Bad input is refused before the first SubmitJob, through Snakemake and the emulation.

Each workflow has a harmless upstream rule and a bad downstream rule: the refusal must come
before the upstream job is submitted (no job of the workflow in any queue), name the rule, the
resource as written and the value, and leave no workflow sources behind in S3.
"""

from __future__ import annotations

import subprocess

import boto3
import pytest

from snakemake_executor_plugin_awsbatch_mpi.local import LOCAL_BUCKET

from .conftest import jobs_with_tag
from .test_executor import snakemake_cmd, write_workflow

pytestmark = pytest.mark.integration

UPSTREAM = """
rule all:
    input: "bad.txt"
rule ok:
    output: "ok.txt"
    shell: "touch {output}"
rule bad:
    input: "ok.txt"
    output: "bad.txt"
"""


def submitted(batch, workflow: str) -> list[dict]:
    """Every job of `workflow` (by its tag) in every queue of the emulation."""
    return jobs_with_tag(batch, "snakemake-workflow", workflow, queues=None)


def run_refused(tmp_path, name: str, bad_rule: str, *extra: str) -> str:
    """Run the workflow; assert it failed before any submission and left nothing in S3."""
    work = write_workflow(tmp_path / name, UPSTREAM + bad_rule)
    run = subprocess.run(snakemake_cmd(work, *extra), cwd=work, capture_output=True,
                         text=True, timeout=180)
    out = run.stdout + run.stderr
    assert run.returncode != 0, out[-2000:]
    assert submitted(boto3.client("batch"), name) == []
    listing = boto3.client("s3").list_objects_v2(Bucket=LOCAL_BUCKET, Prefix=f"{name}/")
    leftovers = [o["Key"] for o in listing.get("Contents", [])]
    assert leftovers == [], f"left in S3 after a refused run: {leftovers}"
    assert "Traceback" not in out, out[-3000:]
    # The refusal stands alone: no stray frame of the plugin under it (issue 21 item 4).
    assert 'File "' not in out and "__post_init__" not in out, out[-3000:]
    return out


def test_downstream_bad_tag_is_refused_before_upstream_runs(emulated_env, tmp_path):
    out = run_refused(tmp_path, "badtag", """
    resources: awsbatch_tags="aws:owner=me"
    shell: "touch {output}"
""")
    assert "Rule 'bad'" in out and "awsbatch_tags='aws:owner=me'" in out
    assert "starts with 'aws:'" in out and "Nothing was submitted" in out


def test_downstream_unknown_queue_is_refused(emulated_env, tmp_path):
    out = run_refused(tmp_path, "noqueue", """
    resources: awsbatch_queue="no-such-queue"
    shell: "touch {output}"
""")
    assert "Rule 'bad'" in out and "Job queue 'no-such-queue' does not exist" in out
    assert "Nothing was submitted" in out


def test_downstream_misspelled_plugin_resource_is_refused(emulated_env, tmp_path):
    """A typo in an awsbatch_* name would send the job to the default queue without a word."""
    out = run_refused(tmp_path, "typo", """
    resources: awsbatch_queu="local-gpu"
    shell: "touch {output}"
""")
    assert "Rule 'bad'" in out and "awsbatch_queu='local-gpu'" in out
    assert "did you mean awsbatch_queue?" in out and "Nothing was submitted" in out


def test_job_larger_than_any_compute_environment_is_refused(emulated_env, tmp_path):
    out = run_refused(tmp_path, "huge", """
    threads: 100000
    shell: "touch {output}"
""")
    assert "Rule 'bad'" in out and "threads=100000" in out
    assert "at most 256 vCPUs" in out and "RUNNABLE forever" in out


def test_memory_beyond_every_instance_names_mem_mb(emulated_env, tmp_path):
    out = run_refused(tmp_path, "hugemem", """
    resources: mem_mb=10**12
    shell: "touch {output}"
""")
    assert "mem_mb=1000000000000" in out and "MiB of memory" in out


def test_negative_memory_is_named_as_written(emulated_env, tmp_path):
    out = run_refused(tmp_path, "negmem", """
    resources: mem_mb=-100
    shell: "touch {output}"
""")
    assert "mem_mb=-100" in out and "mem_mib" not in out


def test_fractional_gpu_is_refused_not_rounded(emulated_env, tmp_path):
    out = run_refused(tmp_path, "halfgpu", """
    resources: gpu=1.5
    shell: "touch {output}"
""")
    assert "gpu=1.5" in out and "round it to 2" in out


def test_huge_config_value_is_refused_with_advice(emulated_env, tmp_path):
    out = run_refused(tmp_path, "bigconfig", """
    shell: "touch {output}"
""", "--config", "blob=" + "x" * 40_000)
    assert "30,720" in out and "--configfile" in out and "Nothing was submitted" in out


def test_declared_secret_without_source_is_refused(emulated_env, tmp_path, monkeypatch):
    monkeypatch.setenv("DECLARED_TOKEN", "hunter2")
    out = run_refused(tmp_path, "declared", """
    shell: "touch {output}"
envvars: "DECLARED_TOKEN"
""")
    assert "DECLARED_TOKEN" in out and "--awsbatch-mpi-secrets DECLARED_TOKEN=" in out
    assert "hunter2" not in out


@pytest.mark.parametrize(
    ("flag", "value", "allowed"),
    [
        ("--awsbatch-mpi-api-calls-per-second", "0.001", "0.5 to 50"),
        ("--awsbatch-mpi-api-calls-per-second", "0", "0.5 to 50"),
        ("--awsbatch-mpi-api-calls-per-second", "-1", "0.5 to 50"),
        ("--awsbatch-mpi-mpi-join-timeout", "-1", "1 to 86400"),
    ],
)
def test_out_of_range_setting_is_one_sentence(emulated_env, tmp_path, flag, value, allowed):
    name = "setting" + str(abs(hash((flag, value))) % 10_000)
    out = run_refused(tmp_path, name, """
    shell: "touch {output}"
""", flag, value)
    assert f"{flag} is {value};" in out
    assert allowed in out


def test_share_on_a_fifo_queue_is_refused(emulated_env, tmp_path):
    out = run_refused(tmp_path, "fifoshare", """
    resources: awsbatch_share="teamA"
    shell: "touch {output}"
""")
    assert "awsbatch_share='teamA'" in out and "no fair-share scheduling policy" in out


def test_instance_type_on_a_single_node_rule_is_refused(emulated_env, tmp_path):
    out = run_refused(tmp_path, "single", """
    resources: awsbatch_instance_type="c5.24xlarge"
    shell: "touch {output}"
""")
    assert "awsbatch_instance_type='c5.24xlarge'" in out and "multi-node" in out


def test_tags_beyond_50_count_the_run_tags(emulated_env, tmp_path):
    settings_tags = " ".join(f"k{i}=v" for i in range(45))
    out = run_refused(tmp_path, "manytags", """
    resources: awsbatch_tags="a=1,b=2,c=3"
    shell: "touch {output}"
""", "--awsbatch-mpi-tags", settings_tags)
    assert "51 tags (3 set by the plugin" in out and "at most 50" in out


def test_plan_and_a_real_run_send_the_same_requests(emulated_env, tmp_path, capsys):
    """`awsbatch-mpi plan` renders what the executor sends: same names, queues, sizes,
    definitions, timeouts and tag keys, job by job."""
    from snakemake_executor_plugin_awsbatch_mpi import cli

    work = write_workflow(tmp_path / "sameplan", """
        rule all:
            input: expand("out/{s}.txt", s=["x", "y"]), "big.txt"
        rule small:
            output: "out/{s}.txt"
            resources: mem_mb=1000, runtime=5
            shell: "echo {wildcards.s} > {output}"
        rule big:
            output: "big.txt"
            threads: 2
            resources: mem_mib=3000, awsbatch_tags="team=bio"
            shell: "touch {output}"
    """)
    # Job by job: plan shows each job's own request, which an array job sends for its children.
    run = subprocess.run(snakemake_cmd(work, "--awsbatch-mpi-array-jobs", "none"), cwd=work,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    out = tmp_path / "plan.json"
    code = cli.main(["plan", "-s", str(work / "Snakefile"), "-d", str(work),
                     "--job-queue", "local-cpu", "--out", str(out)])
    capsys.readouterr()
    assert code == 0
    import json
    planned = {j["submitJob"]["jobName"]: j for j in json.loads(out.read_text())["jobs"]}
    sent = {j["jobName"]: j for j in submitted(boto3.client("batch"), "sameplan")}
    assert set(planned) == set(sent) == {"small-x", "small-y", "big"}
    for name, job in sent.items():
        submit = planned[name]["submitJob"]
        assert job["jobQueue"].endswith("/" + submit["jobQueue"])
        definition = job["jobDefinition"].rsplit("/", 1)[-1].split(":")[0]
        assert definition == planned[name]["registerJobDefinition"]
        requirements = {r["type"]: r["value"] for r in job["container"]["resourceRequirements"]}
        expected = {r["type"]: r["value"]
                    for r in submit["containerOverrides"]["resourceRequirements"]}
        assert requirements == expected
        assert job.get("timeout") == submit.get("timeout")
        assert set(job["tags"]) == set(submit["tags"])
        assert {k: v for k, v in job["tags"].items() if k != "snakemake-run-id"} == {
            k: v for k, v in submit["tags"].items() if k != "snakemake-run-id"}


def test_downstream_mpi_rule_on_a_spot_queue_is_refused(emulated_env, tmp_path):
    batch = boto3.client("batch")
    if not batch.describe_job_queues(jobQueues=["spot-only"])["jobQueues"]:
        ce = batch.create_compute_environment(
            computeEnvironmentName="spot-only-ce", type="MANAGED", state="ENABLED",
            serviceRole=emulated_env.service_role_arn,
            computeResources={
                "type": "SPOT", "minvCpus": 0, "maxvCpus": 64, "instanceTypes": ["c5"],
                "bidPercentage": 60, "subnets": [emulated_env.subnet_id],
                "securityGroupIds": [emulated_env.security_group_id],
                "instanceRole": emulated_env.instance_profile_arn,
            },
        )["computeEnvironmentArn"]
        batch.create_job_queue(jobQueueName="spot-only", state="ENABLED", priority=1,
                               computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce}])
    out = run_refused(tmp_path, "mpispot", """
    resources: mpi="mpirun", tasks=2, nodes=2
    shell: "{resources.mpi} -n {resources.tasks} hostname > {output}"
""", "--awsbatch-mpi-multinode-job-queue", "spot-only")
    assert "Rule 'bad'" in out and "runs on Spot" in out and "multi-node" in out


def test_declared_secret_reaches_the_job_through_batch_secrets(emulated_env, tmp_path,
                                                               monkeypatch):
    """`--awsbatch-mpi-secrets`: the job definition names the secret, the container gets its
    value at start (as ECS does), and DescribeJobs never shows the value."""
    monkeypatch.setenv("DECLARED_TOKEN", "value-on-the-laptop")
    arn = boto3.client("secretsmanager").create_secret(
        Name=f"declared-token-{tmp_path.name}", SecretString="from-secrets-manager")["ARN"]
    work = write_workflow(tmp_path / "withsecret", """
        envvars: "DECLARED_TOKEN"
        rule all:
            input: "checked.txt"
        rule check:
            output: "checked.txt"
            shell: "test \\"$DECLARED_TOKEN\\" = from-secrets-manager && touch {output}"
    """)
    run = subprocess.run(
        snakemake_cmd(work, "--awsbatch-mpi-secrets", f"DECLARED_TOKEN={arn}",
                      "--awsbatch-mpi-execution-role-arn", emulated_env.execution_role_arn),
        cwd=work, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    batch = boto3.client("batch")
    [job] = submitted(batch, "withsecret")
    assert job["status"] == "SUCCEEDED"
    [definition] = batch.describe_job_definitions(jobDefinitions=[job["jobDefinition"]])[
        "jobDefinitions"]
    props = definition["containerProperties"]
    assert props["secrets"] == [{"name": "DECLARED_TOKEN", "valueFrom": arn}]
    assert props["executionRoleArn"] == emulated_env.execution_role_arn
    described = str(job) + str(definition)
    assert "from-secrets-manager" not in described and "value-on-the-laptop" not in described


def test_set_resources_replaces_what_the_snakefile_says(emulated_env, tmp_path):
    """gpu=1.5 in the Snakefile is refused, but --set-resources bad:gpu=0 replaces it."""
    work = write_workflow(tmp_path / "overridden", UPSTREAM + """
    resources: gpu=1.5
    shell: "touch {output}"
""")
    run = subprocess.run(snakemake_cmd(work, "--set-resources", "bad:gpu=0"), cwd=work,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    assert {j["status"] for j in submitted(boto3.client("batch"), "overridden")} == {
        "SUCCEEDED"}
