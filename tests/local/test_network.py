"""MPI nodes reach what awsvpc containers reach on AWS: S3 only with a way to it.

The emulation's own compute environments are built as `awsbatch-mpi setup` builds them
(public subnet, internet gateway, S3 gateway endpoint): their nodes reach S3 and no other
AWS API. A compute environment in a subnet whose only way out is the internet gateway gives
its nodes nothing: S3 refuses them, and their log says why. Adding the S3 gateway endpoint
fixes it, as on AWS. Container jobs (the instance's network) are not affected.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from snakemake_executor_plugin_awsbatch_mpi.local import LocalEmulation
from snakemake_executor_plugin_awsbatch_mpi.local.emulation import build_setup_network
from snakemake_executor_plugin_awsbatch_mpi.local.network import NOTE_PREFIX

from ._helpers import IMAGE, Aws

# Each node tries S3 and Batch once (no retries, short timeouts) and says what happened;
# a node that cannot reach S3 exits 3, as a Snakemake job that cannot stage its files fails.
PROBE = """
import os, sys, boto3
from botocore.config import Config
quick = Config(retries={"max_attempts": 1}, connect_timeout=3, read_timeout=10)
try:
    boto3.client("s3", config=quick).head_bucket(Bucket="snakemake-local")
    print("S3 OK", flush=True)
except Exception as err:
    print(f"S3 FAILED {type(err).__name__}: {err}", flush=True)
    sys.exit(3)
try:
    boto3.client("batch", config=quick).describe_job_queues()
    print("BATCH OK", flush=True)
except Exception as err:
    print(f"BATCH FAILED {type(err).__name__}", flush=True)
"""


@pytest.fixture(scope="module")
def probe_def(aws: Aws) -> str:
    container = {
        "image": IMAGE,
        "command": ["python", "-c", PROBE],
        "resourceRequirements": [
            {"type": "VCPU", "value": "1"},
            {"type": "MEMORY", "value": "256"},
        ],
    }
    return aws.batch.register_job_definition(
        jobDefinitionName="local-test-network-probe",
        type="multinode",
        nodeProperties={
            "numNodes": 2,
            "mainNode": 0,
            "nodeRangeProperties": [{"targetNodes": "0:", "container": container}],
        },
    )["jobDefinitionArn"]


@pytest.fixture(scope="module")
def public_only(emulation: LocalEmulation) -> Iterator[tuple[str, str]]:
    """(queue, route table) of a compute environment whose only way out is an internet
    gateway: what `awsbatch-mpi setup` built before it added the S3 gateway endpoint."""
    ec2 = emulation.boto3_client("ec2")
    subnet = build_setup_network(
        ec2, emulation.vpc_id, emulation.region, "10.0.200.0/24", s3_endpoint=False
    )
    emulation.add_queue("local-test-public-only", [subnet])
    [table] = ec2.describe_route_tables(
        Filters=[{"Name": "association.subnet-id", "Values": [subnet]}]
    )["RouteTables"]
    yield "local-test-public-only", table["RouteTableId"]


def _node_logs(aws: Aws, job_id: str) -> list[list[str]]:
    nodes = aws.batch.describe_jobs(jobs=[f"{job_id}#0", f"{job_id}#1"])["jobs"]
    return [aws.log_messages(n["container"]["logStreamName"]) for n in nodes]


def test_nodes_of_the_emulations_own_queue_reach_s3_and_no_other_aws_api(
    aws: Aws, probe_def: str
) -> None:
    job = aws.wait(aws.submit("net-setup", probe_def, queue="local-mpi"), timeout=60)
    logs = _node_logs(aws, job["jobId"])
    assert job["status"] == "SUCCEEDED", logs
    for messages in logs:
        assert "S3 OK" in messages
        assert "BATCH FAILED EndpointConnectionError" in messages
        assert not any(m.startswith(NOTE_PREFIX) for m in messages)


def test_nodes_behind_an_internet_gateway_alone_cannot_reach_s3_until_the_endpoint_is_added(
    aws: Aws, probe_def: str, public_only: tuple[str, str], emulation: LocalEmulation
) -> None:
    queue, table = public_only
    job = aws.wait(aws.submit("net-refused", probe_def, queue=queue), timeout=60)
    logs = _node_logs(aws, job["jobId"])
    assert job["status"] == "FAILED", logs
    assert job["container"]["exitCode"] == 3
    for messages in logs:
        note = messages[0]
        assert note.startswith(
            f"{NOTE_PREFIX} This node cannot reach S3 or any other AWS API, as on AWS: Subnet "
        )
        assert "the only way out is an internet gateway" in note
        assert f"--route-table-ids {table}" in note
        failure = next(m for m in messages if m.startswith("S3 "))
        assert failure.startswith("S3 FAILED EndpointConnectionError"), messages

    ec2 = emulation.boto3_client("ec2")
    vpc = ec2.describe_route_tables(RouteTableIds=[table])["RouteTables"][0]["VpcId"]
    ec2.create_vpc_endpoint(
        VpcId=vpc,
        ServiceName=f"com.amazonaws.{emulation.region}.s3",
        VpcEndpointType="Gateway",
        RouteTableIds=[table],
    )
    job = aws.wait(aws.submit("net-fixed", probe_def, queue=queue), timeout=60)
    logs = _node_logs(aws, job["jobId"])
    assert job["status"] == "SUCCEEDED", logs
    assert all("S3 OK" in messages for messages in logs)


def test_container_jobs_use_the_instance_network(aws: Aws, shell_def: str) -> None:
    script = 'python -c "import boto3; boto3.client(\'batch\').describe_job_queues(); print(1)"'
    job = aws.wait(aws.submit_shell("net-container", shell_def, script), timeout=60)
    assert job["status"] == "SUCCEEDED", aws.log_messages(job["container"]["logStreamName"])


def test_node_environment_withholds_what_the_node_cannot_reach() -> None:
    import socket

    from snakemake_executor_plugin_awsbatch_mpi.local.network import (
        OPEN,
        NodeNetwork,
        RefusedPort,
        node_environment,
    )

    base = {"AWS_ENDPOINT_URL": "http://emu", "AWS_ENDPOINT_URL_S3": "http://job-said",
            "AWS_ENDPOINT_URL_STS": "http://job-said", "X": "1"}
    refused = RefusedPort()
    try:
        assert node_environment(base, OPEN, "http://emu", refused.url) == base
        s3_only = node_environment(base, NodeNetwork(s3=True, other_aws=False), "http://emu",
                                   refused.url)
        assert s3_only == {"AWS_ENDPOINT_URL": refused.url, "AWS_ENDPOINT_URL_S3": "http://emu",
                           "X": "1"}
        nothing = node_environment(base, NodeNetwork(s3=False, other_aws=False), "http://emu",
                                   refused.url)
        assert nothing == {"AWS_ENDPOINT_URL": refused.url, "X": "1"}
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((refused.host, refused.port), timeout=2)
    finally:
        refused.close()
