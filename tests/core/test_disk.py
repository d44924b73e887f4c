"""Disk on EC2 (issue 19 §2): root volumes from launch templates, the one warning per rule,
and the in-job free-space check (run for real with bash and python here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from snakemake_executor_plugin_awsbatch_mpi.batch.model import validate_request
from snakemake_executor_plugin_awsbatch_mpi.core.disk import declared_disk, disk_warning
from snakemake_executor_plugin_awsbatch_mpi.core.disk_guard import (
    DISK_GUARD_EXIT_CODE,
    DISK_GUARD_MARK,
    guarded_command,
)
from snakemake_executor_plugin_awsbatch_mpi.core.planner import (
    plan_job,
    rule_disk_warning,
    split_environment,
)
from snakemake_executor_plugin_awsbatch_mpi.core.request import JobRequest, TranslationSettings
from snakemake_executor_plugin_awsbatch_mpi.core.root_volume import (
    LaunchTemplateRef,
    RootVolume,
    launch_template_ref,
    mapped_root_gib,
    root_volume_of,
)
from snakemake_executor_plugin_awsbatch_mpi.core.spec import Platform, QueueInfo, ResourceError

MB = 1_000_000 / 1_048_576  # one MB in MiB


def env(name: str = "ce", kind: str = "EC2", **template: str) -> dict:
    resources: dict = {"type": kind, "maxvCpus": 16}
    if template:
        resources["launchTemplate"] = template
    return {"computeEnvironmentName": name, "type": "MANAGED", "computeResources": resources}


def version(size: int | None, device: str = "/dev/xvda") -> dict:
    mappings = [{"DeviceName": "/dev/xvdb", "Ebs": {"VolumeSize": 999}}]
    if size is not None:
        mappings.append({"DeviceName": device, "Ebs": {"VolumeSize": size}})
    return {"LaunchTemplateData": {"BlockDeviceMappings": mappings}}


def test_root_volume_comes_from_the_launch_template_or_the_ami_default():
    plain = root_volume_of(env("plain"), {})
    assert plain == RootVolume(
        "plain", 30,
        "the ECS-optimized AMI's default: compute environment 'plain' has no launch template",
    )
    ref = LaunchTemplateRef("lt-1", None, "3")
    assert launch_template_ref(env(launchTemplateId="lt-1", version="3")) == ref
    sized = root_volume_of(env("big", launchTemplateId="lt-1", version="3"), {ref: version(200)})
    assert sized == RootVolume("big", 200, "launch template lt-1 (version 3) of compute "
                               "environment 'big'")
    unsized = root_volume_of(env("x", launchTemplateId="lt-1", version="3"), {ref: version(None)})
    assert unsized is not None and unsized.gib == 30 and "does not size" in unsized.source
    # Not read (no permission): unknown, never guessed.
    assert root_volume_of(env(launchTemplateName="lt-name"), {}) is None
    assert launch_template_ref(env(launchTemplateName="lt-name")).request() == {
        "Versions": ["$Default"], "LaunchTemplateName": "lt-name"
    }
    assert root_volume_of(env(kind="FARGATE"), {}) is None
    assert root_volume_of({"computeEnvironmentName": "u", "type": "UNMANAGED"}, {}) is None
    assert mapped_root_gib(version(80, "/dev/sda1")) == 80
    assert mapped_root_gib(version(None)) is None  # /dev/xvdb is not where containers live


def request(rule: str = "r", declared: tuple[str, ...] = ("disk_mb",), **resources) -> JobRequest:
    return JobRequest(rule, 1, resources, declared=frozenset(declared))


def test_only_a_disk_the_user_gave_counts():
    # Snakemake gives every job of a cloud run disk_mb=50000 (or twice its input size).
    assert declared_disk(request(declared=(), disk_mb=50000, disk_mib=47684)) is None
    assert declared_disk(request(disk_mb=50000, disk_mib=47684)) == ("disk_mb", 50000, 50000 * MB)
    assert declared_disk(request(declared=("disk_mib",), disk_mb=2097, disk_mib=2000))[:2] == (
        "disk_mib", 2000,
    )
    # disk="50 GB" reaches the plugin as disk_mb.
    assert declared_disk(request(declared=("disk",), disk_mb=50000, disk_mib=47684))[0] == (
        "disk_mb"
    )
    with pytest.raises(ResourceError, match="disk_mb=-1"):
        declared_disk(request(disk_mb=-1))


def test_one_warning_names_the_rule_its_disk_and_the_smallest_volume_of_the_queue():
    volumes = (RootVolume("a", 500, "source a"), RootVolume("b", 30, "source b"))
    warning = disk_warning("align", ("disk_mb", 50000, 50000 * MB), "q", volumes)
    assert warning == (
        "Rule 'align' asks for disk_mb=50000 (47 GiB), but on EC2 a job gets no disk of its "
        "own: all jobs on an instance share its root volume, and the instances of queue 'q' "
        "have 30 GiB (source b). Its jobs would fail with \"No space left on device\" (each "
        "stops at its start when less is free). Give the compute environment a launch "
        "template whose root volume is larger than 47 GiB (the OS and the container images "
        "use part of it; `awsbatch-mpi setup --root-volume-gib N` does this), send the rule "
        "to a queue with larger volumes (resources: awsbatch_queue=...), or lower disk_mb."
    )
    assert disk_warning("align", ("disk_mb", 50000, 50000 * MB), "q", volumes[:1]) is None
    assert disk_warning("align", ("disk_mb", 50000, 50000 * MB), "q", ()) is None  # unknown
    big = request(disk_mb=50000, disk_mib=47684)
    fargate = QueueInfo("fg", Platform.FARGATE, disks=volumes)
    assert rule_disk_warning(big, fargate) is None  # Fargate sizes ephemeralStorage instead
    assert rule_disk_warning(big, QueueInfo("q", disks=volumes)) == warning.replace(
        "'align'", "'r'"
    )


def run(command: tuple[str, ...], cwd: Path) -> subprocess.CompletedProcess:
    # The job's `python` is the interpreter of the image; here, this test's.
    path = f"{Path(sys.executable).parent}:/usr/bin:/bin"
    return subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, env={"PATH": path}, timeout=30
    )


def test_the_job_stops_at_once_when_its_working_directory_has_less_free_space(tmp_path):
    rule = "a'; touch pwned1; echo \"$(touch pwned2)\" `touch pwned3`; '"
    huge = request(rule, disk_mb=10**9, disk_mib=10**9 * MB)
    command = guarded_command(("/bin/bash", "-c", "touch ran"), huge)
    done = run(command, tmp_path)
    assert done.returncode == DISK_GUARD_EXIT_CODE
    assert done.stderr.startswith(
        f"{DISK_GUARD_MARK} rule '{rule}' asks for disk_mb=1000000000 (1,000,000,000 MB), but "
        f"its working directory {tmp_path} has only "
    )
    assert "MB free, so the job stops before the rule runs." in done.stderr
    assert "awsbatch-mpi setup --root-volume-gib N" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing ran, nothing injected


def test_a_job_with_enough_free_space_runs_its_command(tmp_path):
    small = request(disk_mb=1, disk_mib=MB)
    done = run(guarded_command(("/bin/bash", "-c", "touch ran && echo ok"), small), tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (0, "ok\n", "")
    assert (tmp_path / "ran").exists()
    # Without a disk the user gave, the command is unchanged.
    plain = ("/bin/bash", "-c", "true")
    assert guarded_command(plain, request(declared=(), disk_mb=50000)) == plain


def test_the_planner_adds_the_check_on_ec2_only():
    settings = TranslationSettings("cpu", "img", execution_role_arn="arn:aws:iam::1:role/x")
    env_ = split_environment({}, ())
    big = request(disk_mb=50000, disk_mib=47684)
    ec2 = plan_job(big, settings, QueueInfo("cpu", disks=(RootVolume("ce", 30, "s"),)),
                   ("/bin/bash", "-c", "snakemake"), env_, "wf", "run",
                   validate=validate_request)
    assert ec2.spec.command[2].startswith("python -c ") and ec2.spec.command[2].endswith(
        " || exit $?; snakemake"
    )
    assert ec2.disk_warning is not None and ec2.disk_warning.startswith("Rule 'r' asks for")
    fargate = plan_job(big, settings, QueueInfo("fg", Platform.FARGATE),
                       ("/bin/bash", "-c", "snakemake"), env_, "wf", "run",
                   validate=validate_request)
    assert fargate.spec.command == ("/bin/bash", "-c", "snakemake")
    assert fargate.spec.shape.ephemeral_storage_gib == 47 and fargate.disk_warning is None


def test_a_multi_node_job_checks_on_its_main_node_which_runs_the_command():
    from snakemake_executor_plugin_awsbatch_mpi.mpi import ENV_COMMAND

    settings = TranslationSettings("cpu", "img", multinode_job_queue="mpi")
    mpi = JobRequest("md", 4, {"mpi": "mpirun", "tasks": 8, "nodes": 2, "disk_mb": 50000},
                     declared=frozenset({"disk_mb"}))
    plan = plan_job(mpi, settings, QueueInfo("mpi"), ("/bin/bash", "-c", "snakemake"),
                    split_environment({}, ()), "wf", "run", mpi_key_uri="s3://b/k",
                    validate=validate_request)
    command = dict(plan.spec.environment)[ENV_COMMAND]
    assert command.startswith("python -c ") and command.endswith(" || exit $?; snakemake")


@pytest.mark.parametrize(
    "template",
    [{"launchTemplateId": "lt-0abc", "version": "$Latest"}, {"launchTemplateName": "mine"}],
)
def test_the_launch_template_request_is_valid_for_botocores_ec2_model(template):
    import botocore.session
    from botocore.validate import ParamValidator

    model = botocore.session.get_session().get_service_model("ec2")
    shape = model.operation_model("DescribeLaunchTemplateVersions").input_shape
    params = launch_template_ref(env(**template)).request()
    assert not ParamValidator().validate(params, shape).has_errors()
