"""Fixtures of the ops tests: in-process moto with helpers to build (mis)configured setups."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

REGION = "us-east-1"
REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "example_workflow"


def trust(service: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
            ],
        }
    )


@dataclass
class Aws:
    """boto3 clients on moto, plus the network pieces every compute environment needs."""

    batch: Any
    iam: Any
    ec2: Any
    s3: Any
    service_role: str
    instance_profile: str
    subnet: str
    security_group: str

    def environment(
        self,
        name: str,
        kind: str = "EC2",
        instance_types: list[str] | None = None,
        max_vcpus: int = 64,
        state: str = "ENABLED",
        **extra: Any,
    ) -> str:
        resources: dict[str, Any] = {
            "type": kind,
            "maxvCpus": max_vcpus,
            "subnets": [self.subnet],
            "securityGroupIds": [self.security_group],
            **extra,
        }
        if kind in ("EC2", "SPOT"):
            resources.update(
                minvCpus=0,
                instanceTypes=instance_types or ["c5"],
                instanceRole=self.instance_profile,
            )
        return self.batch.create_compute_environment(
            computeEnvironmentName=name,
            type="MANAGED",
            state=state,
            computeResources=resources,
            serviceRole=self.service_role,
        )["computeEnvironmentArn"]

    def queue(self, name: str, *env_arns: str, state: str = "ENABLED") -> str:
        return self.batch.create_job_queue(
            jobQueueName=name,
            state=state,
            priority=1,
            computeEnvironmentOrder=[
                {"order": i + 1, "computeEnvironment": arn} for i, arn in enumerate(env_arns)
            ],
        )["jobQueueArn"]

    def queue_on(self, name: str, **env: Any) -> str:
        """A queue on a new compute environment of the same name (+ '-ce')."""
        return self.queue(name, self.environment(f"{name}-ce", **env))

    def role(self, name: str, service: str) -> str:
        return self.iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust(service))["Role"][
            "Arn"
        ]


def public_subnet_with_s3(ec2: Any, vpc: str, cidr: str, s3_endpoint: bool = True) -> str:
    """A subnet as `awsbatch-mpi setup` builds one: public IPs, a route to an internet
    gateway and (unless told otherwise) an S3 gateway endpoint on its route table."""
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock=cidr)["Subnet"]["SubnetId"]
    ec2.modify_subnet_attribute(SubnetId=subnet, MapPublicIpOnLaunch={"Value": True})
    gateway = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=gateway, VpcId=vpc)
    table = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    ec2.create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", GatewayId=gateway)
    ec2.associate_route_table(RouteTableId=table, SubnetId=subnet)
    if s3_endpoint:
        ec2.create_vpc_endpoint(
            VpcId=vpc,
            ServiceName=f"com.amazonaws.{REGION}.s3",
            VpcEndpointType="Gateway",
            RouteTableIds=[table],
        )
    return subnet


@pytest.fixture
def aws(aws_env) -> Iterator[Aws]:
    """In-process moto (Batch in its simple mode) with a VPC, roles and an instance profile."""
    from moto import mock_aws

    with mock_aws(config={"batch": {"use_docker": False}}):
        iam = boto3.client("iam", region_name=REGION)
        ec2 = boto3.client("ec2", region_name=REGION)
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnet = public_subnet_with_s3(ec2, vpc, "10.0.0.0/24")
        group = ec2.create_security_group(GroupName="g", Description="g", VpcId=vpc)["GroupId"]
        service_role = iam.create_role(
            RoleName="batch-service", AssumeRolePolicyDocument=trust("batch.amazonaws.com")
        )["Role"]["Arn"]
        iam.create_role(RoleName="instance", AssumeRolePolicyDocument=trust("ec2.amazonaws.com"))
        profile = iam.create_instance_profile(InstanceProfileName="instance")["InstanceProfile"][
            "Arn"
        ]
        iam.add_role_to_instance_profile(InstanceProfileName="instance", RoleName="instance")
        yield Aws(
            batch=boto3.client("batch", region_name=REGION),
            iam=iam,
            ec2=ec2,
            s3=boto3.client("s3", region_name=REGION),
            service_role=service_role,
            instance_profile=profile,
            subnet=subnet,
            security_group=group,
        )


@pytest.fixture
def example(tmp_path) -> Path:
    """A private copy of the example workflow (without any local Snakemake state)."""
    target = tmp_path / "example"
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns(".snakemake", "results", "logs"))
    return target


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No credentials, no region, no config files, and an AWS endpoint nobody listens on."""
    import os

    for name in list(os.environ):
        if name.startswith(("AWS_", "SNAKEMAKE_AWSBATCH_MPI_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
