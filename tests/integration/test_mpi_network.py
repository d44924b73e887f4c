"""An MPI rule on a compute environment whose nodes could not reach S3 on AWS, through
Snakemake, the plugin and the emulation: the job fails and says why; with the S3 gateway
endpoint added (what `awsbatch-mpi setup` now builds) the same workflow succeeds."""

from __future__ import annotations

import shutil
import subprocess

import boto3
import pytest

from snakemake_executor_plugin_awsbatch_mpi.local.emulation import build_setup_network
from snakemake_executor_plugin_awsbatch_mpi.local.network import NOTE_PREFIX

from .test_executor import snakemake_cmd, write_workflow

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not shutil.which("mpirun"), reason="Open MPI (mpirun) is not installed"),
]

SNAKEFILE = """
rule hosts:
    output: "hosts.txt"
    resources: mpi="mpirun", tasks=2, nodes=2
    shell: "{resources.mpi} -n {resources.tasks} hostname > {output}"
"""
QUEUE = "it-public-only-mpi"


def test_mpi_rule_fails_without_a_way_to_s3_and_runs_once_the_endpoint_is_added(
    emulated_env, tmp_path
):
    ec2 = emulated_env.boto3_client("ec2")
    subnet = build_setup_network(
        ec2, emulated_env.vpc_id, emulated_env.region, "10.0.201.0/24", s3_endpoint=False
    )
    emulated_env.add_queue(QUEUE, [subnet])
    work = write_workflow(tmp_path / "mpinet", SNAKEFILE)
    cmd = snakemake_cmd(work, "--awsbatch-mpi-multinode-job-queue", QUEUE)

    refused = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=300)
    assert refused.returncode != 0
    output = refused.stdout + refused.stderr
    # The failure names the node that could not reach S3 and, in its log, why and the fix.
    assert f"{NOTE_PREFIX} This node cannot reach S3" in output, output[-5000:]
    assert f"Subnet {subnet} of compute environment '{QUEUE}-ce'" in output
    assert "the only way out is an internet gateway" in output
    assert "cannot read the rendezvous key" in output
    # What the executor says on AWS too, where no emulation note is in the log.
    assert (
        "node0, node1 could not connect to S3: the containers of multi-node jobs get no public "
        "IP (awsvpc mode)" in output
    )

    [table] = ec2.describe_route_tables(
        Filters=[{"Name": "association.subnet-id", "Values": [subnet]}]
    )["RouteTables"]
    ec2.create_vpc_endpoint(
        VpcId=emulated_env.vpc_id,
        ServiceName=f"com.amazonaws.{emulated_env.region}.s3",
        VpcEndpointType="Gateway",
        RouteTableIds=[table["RouteTableId"]],
    )
    fixed = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=300)
    assert fixed.returncode == 0, fixed.stderr[-5000:]
    body = boto3.client("s3").get_object(Bucket="snakemake-local", Key="mpinet/hosts.txt")
    assert len(body["Body"].read().decode().splitlines()) == 2
