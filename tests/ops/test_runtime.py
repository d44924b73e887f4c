"""The runtime on AWS (issue 22): `awsbatch-mpi runtime install` and the doctor's check, on
moto. (Its Batch in simple mode succeeds the install job without running it; the copy itself
runs in tests/local/test_anyimage_workflow.py on the docker emulation.)"""

from __future__ import annotations

import boto3
import pytest

from snakemake_executor_plugin_awsbatch_mpi import cli
from snakemake_executor_plugin_awsbatch_mpi.batch.model import validate_request
from snakemake_executor_plugin_awsbatch_mpi.core.anyimage import (
    RUNTIME_ROOT,
    parse_runtime_volume,
)
from snakemake_executor_plugin_awsbatch_mpi.core.spec import QueueInfo
from snakemake_executor_plugin_awsbatch_mpi.ops.outcomes import Status
from snakemake_executor_plugin_awsbatch_mpi.ops.runtime_install import (
    INSTALL_MOUNT,
    RUNTIME_TAG,
    install_plan,
)

from .conftest import REGION
from .test_doctor import doctor, line


def test_the_install_job_mounts_the_file_system_read_write_and_copies_as_root_image() -> None:
    volume = parse_runtime_volume("efs:fs-0123abcd:fsap-0123abcd")
    plan = install_plan(volume, QueueInfo("q"), "acct.dkr.ecr.x/snakemake-awsbatch-mpi:rt")
    props = plan.register["containerProperties"]
    assert validate_request("RegisterJobDefinition", plan.register) == []
    assert props["mountPoints"] == [
        {"sourceVolume": "vol0", "containerPath": INSTALL_MOUNT, "readOnly": False}
    ]
    assert props["volumes"][0]["efsVolumeConfiguration"]["authorizationConfig"] == {
        "accessPointId": "fsap-0123abcd"
    }
    command = plan.submit()["containerOverrides"]["command"]
    assert command[:2] == ["/bin/sh", "-c"] and f"src={RUNTIME_ROOT};" in command[2]
    assert "retryStrategy" not in plan.submit()


def _file_system(mount_target_subnet: str | None = None) -> str:
    efs = boto3.client("efs", region_name=REGION)
    fs_id = efs.create_file_system(CreationToken="rt")["FileSystemId"]
    if mount_target_subnet:
        efs.create_mount_target(FileSystemId=fs_id, SubnetId=mount_target_subnet)
    return fs_id


def test_install_on_moto_tags_the_file_system_and_the_doctor_then_passes(aws, capsys):
    aws.queue_on("cpu")
    fs_id = _file_system(aws.subnet)
    volume = parse_runtime_volume(f"efs:{fs_id}")
    before = line(doctor(job_queue="cpu", runtime_volume=volume), "runtime")
    assert before.status is Status.FAIL
    assert f"Runtime 0.1.0 of this plugin is not installed on {fs_id}" in before.message
    assert f"awsbatch-mpi runtime install --file-system efs:{fs_id} --job-queue QUEUE" in (
        before.message
    )

    code = cli.main(["runtime", "install", "--file-system", fs_id, "--job-queue", "cpu",
                     "--region", REGION, "--poll-seconds", "0.05"])
    captured = capsys.readouterr()
    out = captured.out
    assert code == 0, out + captured.err
    assert f"--awsbatch-mpi-runtime-volume efs:{fs_id}" in out
    tags = boto3.client("efs", region_name=REGION).list_tags_for_resource(ResourceId=fs_id)
    assert RUNTIME_TAG in {t["Key"] for t in tags["Tags"]}
    after = line(doctor(job_queue="cpu", runtime_volume=volume), "runtime")
    assert after.status is Status.PASS, after.message


def test_the_doctor_fails_without_a_mount_target_or_file_system_and_warns_on_host(aws):
    aws.queue_on("cpu")
    fs_id = _file_system()
    boto3.client("efs", region_name=REGION).tag_resource(
        ResourceId=fs_id, Tags=[{"Key": RUNTIME_TAG, "Value": "now"}]
    )
    volume = parse_runtime_volume(f"efs:{fs_id}")
    no_target = line(doctor(job_queue="cpu", runtime_volume=volume), "runtime")
    assert no_target.status is Status.FAIL and "no mount target" in no_target.message
    absent = line(doctor(job_queue="cpu", runtime_volume=parse_runtime_volume("efs:fs-00000000")),
                  "runtime")
    assert absent.status is Status.FAIL and "Could not read" in absent.message
    host = line(doctor(job_queue="cpu", runtime_volume=parse_runtime_volume("host:/opt/rt")),
                "runtime")
    assert host.status is Status.WARN and "/opt/rt/0.1.0" in host.message


@pytest.mark.parametrize("bad", ["fs-xyz", "host:relative"])
def test_install_refuses_a_malformed_file_system(bad, capsys):
    assert cli.main(["runtime", "install", "--file-system", bad, "--job-queue", "q"]) == 2
    assert "--file-system" in capsys.readouterr().err


class _FailingBatch:
    """Just what `install` calls of a BatchClient; the job fails, its log says why."""

    def queue_info(self, name):
        return QueueInfo(name)

    def ensure_job_definition(self, payload):
        return "arn:aws:batch:us-east-1:123456789012:job-definition/x:1"

    def submit(self, payload):
        return "job-1"

    def describe(self, ids):
        return {"job-1": {"status": "FAILED", "statusReason": "Essential container exited",
                          "container": {"logStreamName": "s"}}}

    def log_tail(self, group, stream, lines):
        return ["cp: cannot create directory: Permission denied"]


def test_a_failed_install_says_why_and_what_to_check_and_tags_nothing():
    from snakemake_executor_plugin_awsbatch_mpi.ops.runtime_install import InstallError, install

    tagged = []
    shell = type("Shell", (), {"file_system": lambda self, fs: {},
                               "tag_file_system": lambda self, *a: tagged.append(a)})()
    with pytest.raises(InstallError) as raised:
        install(_FailingBatch(), shell, parse_runtime_volume("efs:fs-0123abcd"), "q", "img",
                poll_seconds=0)
    message = str(raised.value)
    assert message.startswith("The runtime install job job-1 failed (Essential container exited)")
    assert "Permission denied" in message and "NFS port 2049" in message
    assert tagged == []
