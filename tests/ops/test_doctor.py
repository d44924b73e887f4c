"""`awsbatch-mpi doctor` on moto: each check fails for its own reason."""

from __future__ import annotations

from dataclasses import replace

import pytest

from snakemake_executor_plugin_awsbatch_mpi.core.request import TranslationSettings
from snakemake_executor_plugin_awsbatch_mpi.ops.aws_shell import AwsShell
from snakemake_executor_plugin_awsbatch_mpi.ops.doctor import DoctorRequest, run_doctor
from snakemake_executor_plugin_awsbatch_mpi.ops.outcomes import CheckResult, Status
from snakemake_executor_plugin_awsbatch_mpi.ops.workflow import LoadedWorkflow, WorkflowJob

from .conftest import REGION


def doctor(region: str | None = REGION, **request) -> list[CheckResult]:
    return run_doctor(DoctorRequest(**request), AwsShell(region=region))


def line(results: list[CheckResult], check: str) -> CheckResult:
    found = [r for r in results if r.check == check]
    assert found, f"no '{check}' line in:\n" + "\n".join(r.line() for r in results)
    return found[0]


def statuses(results: list[CheckResult], prefix: str) -> list[Status]:
    return [r.status for r in results if r.check.startswith(prefix)]


# Credentials and region -------------------------------------------------------------------


def test_credentials_and_region_pass_on_moto(aws):
    aws.queue_on("cpu")
    results = doctor(job_queue="cpu")
    assert line(results, "credentials").status is Status.PASS
    assert "123456789012" in line(results, "credentials").message
    assert line(results, "region").status is Status.PASS
    assert all(r.status is Status.PASS for r in results)


def test_missing_credentials_fail_and_skip_the_rest(offline):
    results = doctor(job_queue="cpu")
    credentials = line(results, "credentials")
    assert credentials.status is Status.FAIL
    assert "no AWS credentials were found" in credentials.message
    assert line(results, "other checks").status is Status.WARN
    assert not any(r.check.startswith("queue") for r in results)


def test_missing_region_fails(offline, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    results = doctor(region=None, job_queue="cpu")
    region = line(results, "region")
    assert region.status is Status.FAIL and "--region" in region.message


# Queues and compute environments -----------------------------------------------------------


def test_missing_queue_fails(aws):
    results = doctor(job_queue="nope")
    result = line(results, "queue nope")
    assert result.status is Status.FAIL and "does not exist in region us-east-1" in result.message


def test_disabled_queue_fails(aws):
    aws.queue("off", aws.environment("off-ce"), state="DISABLED")
    result = line(doctor(job_queue="off"), "queue off")
    assert result.status is Status.FAIL
    assert "DISABLED" in result.message and "--state ENABLED" in result.message


def test_disabled_compute_environment_fails(aws):
    aws.queue_on("cpu", state="DISABLED")
    result = line(doctor(job_queue="cpu"), "compute environment cpu-ce")
    assert result.status is Status.FAIL and "DISABLED" in result.message


def test_compute_environment_without_vcpus_fails(aws):
    aws.queue_on("cpu", max_vcpus=0)
    result = line(doctor(job_queue="cpu"), "compute environment cpu-ce")
    assert result.status is Status.FAIL and "maxvCpus 0" in result.message


# GPU queue ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "status", "word"),
    [
        ({"instance_types": ["g5", "c5"]}, Status.PASS, "GPU instance types are allowed"),
        ({"instance_types": ["optimal"]}, Status.WARN, "have no GPUs"),
        ({"instance_types": ["c5", "m5"]}, Status.FAIL, "c5, m5"),
        ({"kind": "FARGATE"}, Status.FAIL, "Fargate"),
    ],
)
def test_gpu_queue_needs_gpu_instance_types(aws, env, status, word):
    aws.queue_on("cpu")
    aws.queue_on("gpu", **env)
    result = line(doctor(job_queue="cpu", gpu_job_queue="gpu"), "gpu queue gpu")
    assert result.status is status and word in result.message


# Multi-node queue --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["SPOT", "FARGATE"])
def test_multinode_queue_must_be_ec2_on_demand(aws, kind):
    aws.queue_on("cpu")
    aws.queue_on("mpi", kind=kind)
    result = line(doctor(job_queue="cpu", multinode_job_queue="mpi"), "multinode queue mpi")
    assert result.status is Status.FAIL
    assert kind in result.message and "EC2 on-demand" in result.message


def test_multinode_queue_placement_group_from_the_environment(aws):
    # moto has no placement groups (neither the EC2 API nor CloudFormation); Batch's
    # placementGroup is a plain name to moto, which is all this check reads.
    aws.queue_on("cpu")
    aws.queue_on("mpi", placementGroup="mpi-pg")
    results = doctor(job_queue="cpu", multinode_job_queue="mpi")
    assert line(results, "multinode queue mpi").status is Status.PASS
    placement = line(results, "placement group mpi-ce")
    assert placement.status is Status.PASS and "mpi-pg" in placement.message


def test_multinode_queue_placement_group_from_the_launch_template(aws):
    template = aws.ec2.create_launch_template(
        LaunchTemplateName="mpi-lt", LaunchTemplateData={"Placement": {"GroupName": "lt-pg"}}
    )["LaunchTemplate"]["LaunchTemplateId"]
    aws.queue_on("cpu")
    aws.queue_on("mpi", launchTemplate={"launchTemplateId": template})
    placement = line(doctor(job_queue="cpu", multinode_job_queue="mpi"), "placement group mpi-ce")
    assert placement.status is Status.PASS and "lt-pg" in placement.message


def test_multinode_queue_without_placement_group_warns(aws):
    aws.queue_on("cpu")
    aws.queue_on("mpi")
    aws.queue_on("mpi2", launchTemplate={"launchTemplateName": "does-not-exist"})
    results = doctor(job_queue="cpu", multinode_job_queue="mpi")
    missing = line(results, "placement group mpi-ce")
    assert missing.status is Status.WARN and "no placement group" in missing.message
    results = doctor(job_queue="cpu", multinode_job_queue="mpi2")
    unknown = line(results, "placement group mpi2-ce")
    assert unknown.status is Status.WARN and "could not be read" in unknown.message


# Job role and S3 ---------------------------------------------------------------------------


def test_job_role_checks(aws):
    aws.queue_on("cpu")
    good = aws.role("job", "ecs-tasks.amazonaws.com")
    wrong = aws.role("ec2-only", "ec2.amazonaws.com")
    missing = "arn:aws:iam::123456789012:role/absent"
    assert line(doctor(job_queue="cpu", job_role_arn=good), "job role").status is Status.PASS
    result = line(doctor(job_queue="cpu", job_role_arn=wrong), "job role")
    assert result.status is Status.FAIL and "does not trust ecs-tasks" in result.message
    result = line(doctor(job_queue="cpu", job_role_arn=missing), "job role")
    assert result.status is Status.FAIL and "could not be read" in result.message


def test_s3_prefix_must_be_writable(aws):
    aws.queue_on("cpu")
    aws.s3.create_bucket(Bucket="runs")
    result = line(doctor(job_queue="cpu", s3_prefix="s3://runs/team/a"), "s3 prefix")
    assert result.status is Status.PASS
    assert aws.s3.list_objects_v2(Bucket="runs").get("KeyCount") == 0  # the probe is gone
    result = line(doctor(job_queue="cpu", s3_prefix="s3://no-such-bucket/p"), "s3 prefix")
    assert result.status is Status.FAIL and "NoSuchBucket" in result.message
    result = line(doctor(job_queue="cpu", s3_prefix="runs/p"), "s3 prefix")
    assert result.status is Status.FAIL and "s3://bucket/prefix" in result.message


# Rules against the queues' capacity ---------------------------------------------------------


def job(rule: str, threads: int = 1, **resources) -> WorkflowJob:
    return WorkflowJob(
        key=rule,
        rule=rule,
        wildcards={},
        threads=threads,
        resources=resources,
        inputs=(),
        outputs=(f"{rule}.out",),
    )


def workflow(*jobs: WorkflowJob) -> LoadedWorkflow:
    return LoadedWorkflow(name="wf", jobs=jobs)


SETTINGS = TranslationSettings(
    job_queue="cpu", default_image="img", gpu_job_queue="gpu", multinode_job_queue="mpi"
)


def test_rules_are_checked_against_the_queues(aws):
    aws.queue_on("cpu", instance_types=["c5"], max_vcpus=64)
    aws.queue_on("gpu", instance_types=["g4dn"], max_vcpus=64)
    aws.queue_on("mpi", instance_types=["c5n"], max_vcpus=64)
    flow = workflow(
        job("small", threads=2, mem_mb=2000),
        job("huge_memory", threads=2, mem_mb=400_000),
        job("many_gpus", gpu=16),
        job("wide_mpi", threads=36, mpi="mpirun", tasks=144, nodes=4),
        job("fits_mpi", threads=16, mpi="mpirun", tasks=32, nodes=2),
        job("bad_runtime", runtime=0.1),
        job("nowhere", awsbatch_queue="absent-q"),
        WorkflowJob(
            key="l",
            rule="local",
            wildcards={},
            threads=1,
            resources={"mem_mb": 10**9},
            inputs=(),
            outputs=(),
            local=True,
        ),
    )
    results = doctor(
        job_queue="cpu",
        gpu_job_queue="gpu",
        multinode_job_queue="mpi",
        workflow=flow,
        settings=SETTINGS,
    )
    small = line(results, "rule small")
    assert small.status is Status.PASS and "c5.large" in small.message
    huge = line(results, "rule huge_memory")
    assert huge.status is Status.FAIL and "RUNNABLE forever" in huge.message
    assert "MiB" in huge.message
    gpus = line(results, "rule many_gpus")
    assert gpus.status is Status.FAIL and "too few GPUs" in gpus.message
    wide = line(results, "rule wide_mpi")
    assert wide.status is Status.FAIL and "4 nodes x (36 vCPU" in wide.message
    assert "at most 64 vCPUs in total" in wide.message
    assert line(results, "rule fits_mpi").status is Status.PASS
    runtime = line(results, "rule bad_runtime")
    assert runtime.status is Status.FAIL and "runtime" in runtime.message
    assert line(results, "queue absent-q").status is Status.FAIL
    assert line(results, "rule nowhere").status is Status.FAIL
    assert not [r for r in results if r.check == "rule local"]


def test_cores_per_node_of_the_mpi_queue_with_and_without_hyper_threading(aws):
    template = aws.ec2.create_launch_template(
        LaunchTemplateName="mpi-ht-off", LaunchTemplateData={"CpuOptions": {"ThreadsPerCore": 1}}
    )["LaunchTemplate"]["LaunchTemplateId"]
    aws.queue_on("cpu")
    aws.queue_on("mpi", instance_types=["c5n.18xlarge"])
    aws.queue_on("mpi1", instance_types=["c5n.18xlarge"], launchTemplate={
        "launchTemplateId": template})
    default = line(doctor(job_queue="cpu", multinode_job_queue="mpi"), "cores per node mpi")
    assert default.status is Status.PASS
    assert "'mpi-ce' (instance default threads): c5n.18xlarge 36 cores x 2 thread(s)" in (
        default.message
    )
    off = line(doctor(job_queue="cpu", multinode_job_queue="mpi1"), "cores per node mpi1")
    assert "'mpi1-ce' (one thread per core): c5n.18xlarge 36 cores x 1 thread(s)" in off.message


def test_efa_rules_need_efa_instance_types(aws):
    aws.queue_on("cpu")
    aws.queue_on("mpi", instance_types=["c5n"])  # c5n.large ... c5n.4xlarge have no EFA
    aws.queue_on("efa", instance_types=["c5n.18xlarge"])
    flow = workflow(
        job("md", threads=4, mpi="mpirun", tasks=8, nodes=2, awsbatch_efa=True),
        job("md_efa_queue", threads=4, mpi="mpirun", tasks=8, nodes=2, awsbatch_efa=True,
            awsbatch_queue="efa"),
        job("plain_mpi", threads=4, mpi="mpirun", tasks=8, nodes=2),
    )
    results = doctor(job_queue="cpu", multinode_job_queue="mpi", workflow=flow, settings=SETTINGS)
    bad = line(results, "rule md EFA")
    assert bad.status is Status.FAIL and "c5n.large" in bad.message
    assert "c5n.18xlarge" not in bad.message.split("which have no EFA")[0]
    good = line(results, "rule md_efa_queue EFA")
    assert good.status is Status.PASS and "c5n.18xlarge" in good.message
    assert not [r for r in results if r.check == "rule plain_mpi EFA"]


def test_rules_disk_is_checked_against_the_root_volume_of_their_queue(aws):
    """Issue 19 §2: one line per rule that gives a disk; the volume comes from the compute
    environment's launch template, or the AMI's 30 GiB when it has none."""
    big = aws.ec2.create_launch_template(
        LaunchTemplateName="big-root",
        LaunchTemplateData={
            "BlockDeviceMappings": [{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 200}}]
        },
    )["LaunchTemplate"]["LaunchTemplateId"]
    aws.queue_on("cpu")
    aws.queue_on("big", launchTemplate={"launchTemplateId": big, "version": "$Latest"})
    given = frozenset({"disk_mb"})
    flow = workflow(
        replace(job("assemble", disk_mb=50_000, disk_mib=47_684), declared=given),
        replace(job("assemble_big", disk_mb=50_000, awsbatch_queue="big"), declared=given),
        replace(job("assemble_huge", disk_mb=300_000, awsbatch_queue="big"), declared=given),
        job("defaults_only", disk_mb=50_000, disk_mib=47_684),  # Snakemake's default
    )
    results = doctor(job_queue="cpu", workflow=flow, settings=SETTINGS)
    small = line(results, "rule assemble disk")
    assert small.status is Status.WARN
    assert small.message.startswith(
        "Rule 'assemble' asks for disk_mb=50000 (47 GiB), but on EC2 a job gets no disk of its "
        "own: all jobs on an instance share its root volume, and the instances of queue 'cpu' "
        "have 30 GiB (the ECS-optimized AMI's default: compute environment 'cpu-ce' has no "
        "launch template)."
    )
    assert "awsbatch-mpi setup --root-volume-gib N" in small.message
    fits = line(results, "rule assemble_big disk")
    assert fits.status is Status.PASS and "(200 GiB)" in fits.message
    huge = line(results, "rule assemble_huge disk")
    assert huge.status is Status.WARN
    assert f"have 200 GiB (launch template {big} (version $Latest) of compute environment " in (
        huge.message
    )
    assert not [r for r in results if r.check == "rule defaults_only disk"]
    assert line(results, "rule assemble").status is Status.PASS  # placement: unchanged


def test_an_unreadable_launch_template_leaves_the_disk_unchecked_and_says_why(aws):
    aws.queue_on("cpu", launchTemplate={"launchTemplateName": "gone"})
    flow = workflow(replace(job("assemble", disk_mb=50_000), declared=frozenset({"disk_mb"})))
    results = doctor(job_queue="cpu", workflow=flow, settings=SETTINGS)
    warning = line(results, "launch templates")
    assert warning.status is Status.WARN and "gone (version $Default)" in warning.message
    assert "ec2:DescribeLaunchTemplateVersions" in warning.message
    assert not [r for r in results if r.check == "rule assemble disk"]


# The command ---------------------------------------------------------------------------------


def test_cli_doctor_reads_the_profile_and_checks_the_workflow(aws, example, capsys):
    from snakemake_executor_plugin_awsbatch_mpi import cli

    aws.queue_on("local-cpu", instance_types=["c5"])
    aws.queue_on("local-gpu", instance_types=["g4dn"])
    aws.queue_on("local-mpi", instance_types=["c5n"])
    aws.s3.create_bucket(Bucket="snakemake-local")  # the profile's default-storage-prefix
    argv = [
        "doctor",
        "--snakefile",
        str(example / "Snakefile"),
        "--directory",
        str(example),
        "--profile",
        str(example / "profiles" / "local"),
    ]
    code = cli.main(argv)
    out = capsys.readouterr().out
    assert code == 0, out
    assert "PASS  queue local-mpi:" in out and "PASS  s3 prefix:" in out
    assert "PASS  rule count_kmers: All 3 jobs (2 vCPU" in out
    assert "0 failed" in out

    # Any other snakemake option is passed on: here a resource no instance type can give.
    code = cli.main([*argv, "--set-resources", "count_kmers:mem_mb=900000"])
    out = capsys.readouterr().out
    assert code == 1
    assert "FAIL  rule count_kmers:" in out and "RUNNABLE forever" in out


def test_cli_doctor_needs_a_queue(offline, capsys):
    from snakemake_executor_plugin_awsbatch_mpi import cli

    assert cli.main(["doctor"]) == 2
    assert "--job-queue" in capsys.readouterr().err


def test_doctor_refuses_an_out_of_range_setting_before_any_call(offline, capsys):
    from snakemake_executor_plugin_awsbatch_mpi import cli

    code = cli.main(["doctor", "--job-queue", "q", "--awsbatch-mpi-api-calls-per-second", "0"])
    err = capsys.readouterr().err
    assert code == 1
    assert "--awsbatch-mpi-api-calls-per-second is 0; allowed are 0.5 to 50" in err


def test_each_ec2_compute_environment_shows_its_root_volume(aws):
    sized = aws.ec2.create_launch_template(
        LaunchTemplateName="sized",
        LaunchTemplateData={
            "BlockDeviceMappings": [{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 120}}]
        },
    )["LaunchTemplate"]["LaunchTemplateId"]
    aws.queue_on("cpu")
    aws.queue_on("big", launchTemplate={"launchTemplateId": sized})
    results = doctor(job_queue="cpu", gpu_job_queue="big")
    plain = line(results, "root volume cpu-ce")
    assert plain.status is Status.PASS and plain.message.startswith(
        "Instances of 'cpu-ce' have a 30 GiB root volume (the ECS-optimized AMI's default: "
        "compute environment 'cpu-ce' has no launch template); all jobs on an instance share it."
    )
    big = line(results, "root volume big-ce")
    assert f"have a 120 GiB root volume (launch template {sized} (version $Default)" in (
        big.message
    )


def test_fallback_queue_must_be_on_demand(aws):
    aws.queue_on("cpu")
    aws.queue_on("ondemand")
    aws.queue("mixed", aws.environment("mixed-spot-ce", kind="SPOT", bidPercentage=60),
              aws.environment("mixed-ec2-ce"))
    good = line(doctor(job_queue="cpu", fallback_job_queue="ondemand"), "fallback queue ondemand")
    assert good.status is Status.PASS and "on-demand" in good.message
    results = doctor(job_queue="cpu", fallback_job_queue="mixed")
    bad = line(results, "fallback queue mixed")
    assert bad.status is Status.FAIL
    assert "Spot compute environment(s) mixed-spot-ce" in bad.message
    assert "'<stack>-ondemand' queue" in bad.message
    assert line(results, "queue mixed").status is Status.PASS  # the queue itself is fine
    missing = doctor(job_queue="cpu", fallback_job_queue="nope")
    assert line(missing, "queue nope").status is Status.FAIL


def test_cli_doctor_takes_the_fallback_queue_as_a_flag(aws, capsys):
    from snakemake_executor_plugin_awsbatch_mpi import cli

    aws.queue_on("cpu")
    aws.queue_on("spotty", kind="SPOT", bidPercentage=60)
    code = cli.main(["doctor", "--job-queue", "cpu", "--fallback-job-queue", "spotty",
                     "--region", REGION])
    out = capsys.readouterr().out
    assert code == 1
    assert "FAIL  fallback queue spotty: Fallback queue 'spotty' has Spot compute " \
           "environment(s) spotty-ce" in out
