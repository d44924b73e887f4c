"""The doctor's network checks: MPI node containers need S3, instances need ECS/ECR/Logs.

Pure judgements of DescribeSubnets/DescribeRouteTables/DescribeVpcEndpoints answers, then
the doctor on moto against networks built the ways users build them.
"""

from __future__ import annotations

import pytest

from snakemake_executor_plugin_awsbatch_mpi.ops import network
from snakemake_executor_plugin_awsbatch_mpi.ops.outcomes import Status

from .conftest import REGION, public_subnet_with_s3
from .test_doctor import doctor, line


def _subnet(subnet_id="subnet-1", public=True):
    return {"SubnetId": subnet_id, "VpcId": "vpc-1", "MapPublicIpOnLaunch": public}


def _table(table_id, subnet_id=None, main=False, **target):
    associations = [{"SubnetId": subnet_id}] if subnet_id else []
    if main:
        associations.append({"Main": True})
    routes = [{"DestinationCidrBlock": "10.0.0.0/16", "GatewayId": "local", "State": "active"}]
    if target:
        routes.append({"DestinationCidrBlock": "0.0.0.0/0", "State": "active", **target})
    return {"RouteTableId": table_id, "VpcId": "vpc-1", "Associations": associations,
            "Routes": routes}


def _s3_endpoint(*tables):
    return {"VpcEndpointId": "vpce-s3", "VpcId": "vpc-1", "VpcEndpointType": "Gateway",
            "ServiceName": f"com.amazonaws.{REGION}.s3", "State": "available",
            "RouteTableIds": list(tables)}


def _judge(subnet, tables, endpoints=()):
    return network.subnet_networks([subnet], tables, list(endpoints))[subnet["SubnetId"]]


def test_internet_gateway_alone_gives_instances_a_way_out_but_not_mpi_containers():
    net = _judge(_subnet(), [_table("rtb-1", "subnet-1", GatewayId="igw-1")])
    assert net.instances_reach_aws and not net.s3_for_containers
    problem = network.mpi_s3_problem([net], "mpi-ce", REGION)
    assert problem.startswith(
        "Subnet subnet-1 of compute environment 'mpi-ce': the only way out is an internet "
        "gateway, and no S3 gateway endpoint is on the route table (rtb-1). The "
        "containers of multi-node jobs get no public IP (awsvpc mode)"
    )
    assert (
        "aws ec2 create-vpc-endpoint --vpc-id vpc-1 --service-name "
        "com.amazonaws.us-east-1.s3 --route-table-ids rtb-1" in problem
    )
    assert "NAT gateway" in problem and "awsbatch-mpi setup" in problem


@pytest.mark.parametrize(
    ("tables", "endpoints", "s3", "instances"),
    [
        # setup's default: public subnet, internet gateway, S3 gateway endpoint.
        ([_table("rtb-1", "subnet-1", GatewayId="igw-1")], [_s3_endpoint("rtb-1")], True, True),
        # setup --nat-gateway: private subnet behind a NAT gateway.
        ([_table("rtb-2", "subnet-1", NatGatewayId="nat-1")], [], True, True),
        # No association: the VPC's main route table counts.
        ([_table("rtb-main", main=True, NatGatewayId="nat-1")], [], True, True),
        # The endpoint is on another route table: it does not help this subnet.
        ([_table("rtb-1", "subnet-1", GatewayId="igw-1")], [_s3_endpoint("rtb-9")], False, True),
        # A default route whose NAT gateway is gone is a blackhole.
        (
            [_table("rtb-1", "subnet-1", NatGatewayId="nat-1", State="blackhole")],
            [_s3_endpoint("rtb-1")],
            True,
            False,
        ),
    ],
)
def test_ways_out_of_a_subnet(tables, endpoints, s3, instances):
    net = _judge(_subnet(), tables, endpoints)
    assert (net.s3_for_containers, net.instances_reach_aws) == (s3, instances)


def test_interface_endpoints_are_a_way_to_ecs_for_isolated_subnets():
    isolated = _table("rtb-1", "subnet-1")
    interfaces = [
        {"VpcEndpointId": f"vpce-{s}", "VpcId": "vpc-1", "VpcEndpointType": "Interface",
         "ServiceName": f"com.amazonaws.{REGION}.{s}", "PrivateDnsEnabled": True,
         "State": "available"}
        for s in network.INSTANCE_SERVICES
    ]
    net = _judge(_subnet(public=False), [isolated], [_s3_endpoint("rtb-1"), *interfaces[:-1]])
    problem = network.instance_problem([net], "cpu-ce")
    assert "no interface endpoint for logs." in problem
    assert "wait in RUNNABLE forever" in problem
    net = _judge(_subnet(public=False), [isolated], [_s3_endpoint("rtb-1"), *interfaces])
    assert network.instance_problem([net], "cpu-ce") is None


def test_public_route_without_public_ips_fails_for_instances():
    net = _judge(_subnet(public=False), [_table("rtb-1", "subnet-1", GatewayId="igw-1")])
    assert "MapPublicIpOnLaunch is off" in network.instance_problem([net], "cpu-ce")


# The doctor on moto -------------------------------------------------------------------------


def _mpi_queue_on(aws, subnet: str) -> None:
    aws.subnet = subnet
    aws.queue_on("mpi", instance_types=["c5n"])


def test_doctor_fails_an_mpi_subnet_behind_an_internet_gateway_only_and_passes_the_fix(aws):
    vpc = aws.ec2.describe_subnets(SubnetIds=[aws.subnet])["Subnets"][0]["VpcId"]
    public = public_subnet_with_s3(aws.ec2, vpc, "10.0.9.0/24", s3_endpoint=False)
    _mpi_queue_on(aws, public)
    results = doctor(job_queue="mpi", multinode_job_queue="mpi")
    mpi = line(results, "mpi network mpi-ce")
    assert mpi.status is Status.FAIL
    assert f"Subnet {public} of compute environment 'mpi-ce': the only way out is an " in (
        mpi.message
    )
    assert line(results, "network mpi-ce").status is Status.PASS  # instances are fine

    [table] = aws.ec2.describe_route_tables(
        Filters=[{"Name": "association.subnet-id", "Values": [public]}]
    )["RouteTables"]
    aws.ec2.create_vpc_endpoint(
        VpcId=vpc, ServiceName=f"com.amazonaws.{REGION}.s3", VpcEndpointType="Gateway",
        RouteTableIds=[table["RouteTableId"]],
    )
    results = doctor(job_queue="mpi", multinode_job_queue="mpi")
    mpi = line(results, "mpi network mpi-ce")
    assert mpi.status is Status.PASS, mpi.message
    assert "reach S3 through an S3 gateway endpoint" in mpi.message


def test_doctor_passes_an_mpi_subnet_behind_a_nat_gateway(aws):
    vpc = aws.ec2.describe_subnets(SubnetIds=[aws.subnet])["Subnets"][0]["VpcId"]
    private = aws.ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.10.0/24")["Subnet"]["SubnetId"]
    allocation = aws.ec2.allocate_address(Domain="vpc")["AllocationId"]
    nat = aws.ec2.create_nat_gateway(SubnetId=aws.subnet, AllocationId=allocation)
    table = aws.ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    aws.ec2.create_route(
        RouteTableId=table, DestinationCidrBlock="0.0.0.0/0",
        NatGatewayId=nat["NatGateway"]["NatGatewayId"],
    )
    aws.ec2.associate_route_table(RouteTableId=table, SubnetId=private)
    _mpi_queue_on(aws, private)
    results = doctor(job_queue="mpi", multinode_job_queue="mpi")
    assert line(results, "mpi network mpi-ce").status is Status.PASS
    assert "NAT gateway" in line(results, "network mpi-ce").message


def test_doctor_fails_a_compute_environment_whose_instances_have_no_way_out(aws):
    vpc = aws.ec2.describe_subnets(SubnetIds=[aws.subnet])["Subnets"][0]["VpcId"]
    isolated = aws.ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.11.0/24")["Subnet"]["SubnetId"]
    table = aws.ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    aws.ec2.associate_route_table(RouteTableId=table, SubnetId=isolated)
    aws.subnet = isolated
    aws.queue_on("cpu")
    results = doctor(job_queue="cpu")
    net = line(results, "network cpu-ce")
    assert net.status is Status.FAIL
    assert net.message.startswith(
        f"Subnet {isolated} of compute environment 'cpu-ce': there is no NAT gateway, no "
        "internet gateway and no interface endpoint for ecs, ecs-agent"
    )
    assert "the jobs would wait in RUNNABLE forever" in net.message
    assert not [r for r in results if r.check.startswith("mpi network")]  # not the MPI queue


def test_doctor_names_a_subnet_that_no_longer_exists(aws):
    vpc = aws.ec2.describe_subnets(SubnetIds=[aws.subnet])["Subnets"][0]["VpcId"]
    gone = aws.ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.12.0/24")["Subnet"]["SubnetId"]
    aws.environment("two-ce", subnets=[aws.subnet, gone])
    aws.ec2.delete_subnet(SubnetId=gone)
    aws.queue("two", aws.batch.describe_compute_environments(
        computeEnvironments=["two-ce"])["computeEnvironments"][0]["computeEnvironmentArn"])
    net = line(doctor(job_queue="two"), "network two-ce")
    assert net.status is Status.FAIL
    assert net.message == (
        f"Compute environment 'two-ce' uses subnet(s) {gone}, which could not be found. "
        "Point it at existing subnets."
    )
