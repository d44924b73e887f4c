"""Shared fixtures: in-process moto for Batch API-shape tests."""

from __future__ import annotations

import os

import boto3
import pytest

REGION = "us-east-1"


def require_mpi(path: str | None = None) -> None:
    """Skip (or under CI=true, fail) with the one sentence of `check_mpi` unless MPI works."""
    from snakemake_executor_plugin_awsbatch_mpi.local.host_mpi import check_mpi

    found = check_mpi(path)
    if found.ok:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and MPI is not usable: {found.problem}", pytrace=False)
    pytest.skip(found.problem)


@pytest.fixture(scope="session")
def usable_mpi() -> None:
    """Open MPI that compiles and links an MPI program, checked as `make` and the demo do.

    A test that needs it and cannot run says why; under CI=true (set by .ci/run) it fails
    instead: CI must not skip the MPI tests.
    """
    require_mpi()


@pytest.fixture
def aws_env(monkeypatch):
    """Dummy credentials so nothing can ever reach a real account."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)


@pytest.fixture
def moto_batch(aws_env):
    """moto's simple Batch (jobs succeed at once) with an EC2 and a Fargate queue."""
    from moto import mock_aws

    with mock_aws(config={"batch": {"use_docker": False}}):
        iam = boto3.client("iam", region_name=REGION)
        ec2 = boto3.client("ec2", region_name=REGION)
        batch = boto3.client("batch", region_name=REGION)
        role = iam.create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        profile = iam.create_instance_profile(InstanceProfileName="p")["InstanceProfile"]["Arn"]
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.0.0/24")["Subnet"]["SubnetId"]
        sg = ec2.create_security_group(GroupName="g", Description="g", VpcId=vpc)["GroupId"]

        def env(name, kind):
            resources = {
                "type": kind,
                "maxvCpus": 64,
                "subnets": [subnet],
                "securityGroupIds": [sg],
            }
            if kind in ("EC2", "SPOT"):
                resources.update(
                    minvCpus=0, instanceTypes=["optimal"], instanceRole=profile
                )
            arn = batch.create_compute_environment(
                computeEnvironmentName=f"{name}-ce",
                type="MANAGED",
                state="ENABLED",
                computeResources=resources,
                serviceRole=role,
            )["computeEnvironmentArn"]
            batch.create_job_queue(
                jobQueueName=f"{name}-q",
                state="ENABLED",
                priority=1,
                computeEnvironmentOrder=[{"order": 1, "computeEnvironment": arn}],
            )

        env("cpu", "EC2")
        env("fg", "FARGATE")
        env("spot", "SPOT")
        yield batch
