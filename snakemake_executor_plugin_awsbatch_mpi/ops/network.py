"""Ways out of a compute environment's subnets, and whether its jobs can use them.

Two facts of AWS decide whether a Batch job can reach anything outside its VPC:

* Instances (ECS container instances) register with ECS, pull images from ECR and send
  logs to CloudWatch. They need a public IP and a route to an internet gateway, a route to
  a NAT gateway, or interface endpoints for those services; without any, they never join
  the cluster and the jobs wait in RUNNABLE forever.
* Multi-node parallel jobs run in ECS ``awsvpc`` mode: each node's container gets its own
  network interface in the subnet, and such interfaces never get a public IP. Behind an
  internet gateway alone they reach nothing outside the VPC, S3 included; they need an S3
  gateway endpoint on the subnet's route table, or a NAT gateway.

`read_subnets` reads the facts through a given EC2 ``call`` (the doctor's `AwsShell` on AWS,
a boto3 client on the local emulation, which asks the same question before it lets an MPI
node reach its S3); the rest of the module is pure.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .outcomes import CheckResult, failed, passed, warned

DEFAULT_ROUTE = "0.0.0.0/0"
# Interface endpoints an instance without internet access needs (plus S3 for ECR's layers).
INSTANCE_SERVICES = ("ecs", "ecs-agent", "ecs-telemetry", "ecr.api", "ecr.dkr", "logs")

Call = Callable[..., Mapping[str, Any]]


@dataclass(frozen=True)
class SubnetNetwork:
    """What a subnet's route table and its VPC's endpoints give the machines in it."""

    subnet_id: str
    vpc_id: str
    route_table_id: str | None
    public_ip_on_launch: bool
    # Targets of the active default route (0.0.0.0/0), by kind: "igw", "nat" or "other"
    # (transit gateway, peering, a NAT instance, ...: a way out the doctor cannot follow).
    default_route: str | None
    s3_gateway_endpoint: str | None
    interface_endpoints: frozenset[str] = frozenset()

    @property
    def s3_for_containers(self) -> bool:
        """Whether an awsvpc container (no public IP) reaches S3 from this subnet."""
        return bool(
            self.s3_gateway_endpoint
            or self.default_route == "nat"
            or "s3" in self.interface_endpoints
        )

    @property
    def s3_unknown(self) -> bool:
        return not self.s3_for_containers and self.default_route == "other"

    @property
    def instances_reach_aws(self) -> bool:
        """Whether instances reach ECS, ECR and CloudWatch from this subnet."""
        if self.default_route == "nat":
            return True
        if self.default_route == "igw" and self.public_ip_on_launch:
            return True
        return set(INSTANCE_SERVICES) <= self.interface_endpoints

    @property
    def missing_endpoints(self) -> list[str]:
        return [s for s in INSTANCE_SERVICES if s not in self.interface_endpoints]


def _route_kind(route: Mapping[str, Any]) -> str:
    if str(route.get("GatewayId", "")).startswith("igw-"):
        return "igw"
    if route.get("NatGatewayId"):
        return "nat"
    return "other"


def _short_service(name: str) -> str:
    """``com.amazonaws.us-east-1.ecr.dkr`` -> ``ecr.dkr``."""
    parts = name.split(".")
    return ".".join(parts[3:]) if len(parts) > 3 else name


def subnet_networks(
    subnets: Sequence[Mapping[str, Any]],
    route_tables: Sequence[Mapping[str, Any]],
    endpoints: Sequence[Mapping[str, Any]],
) -> dict[str, SubnetNetwork]:
    """Judge each subnet from DescribeSubnets, DescribeRouteTables and DescribeVpcEndpoints.

    A subnet without an explicit route table association uses its VPC's main route table.
    Routes in state ``blackhole`` (their target is gone) do not count.
    """
    by_subnet: dict[str, Mapping[str, Any]] = {}
    main_of_vpc: dict[str, Mapping[str, Any]] = {}
    for table in route_tables:
        for association in table.get("Associations") or []:
            if association.get("SubnetId"):
                by_subnet[association["SubnetId"]] = table
            if association.get("Main"):
                main_of_vpc[str(table.get("VpcId"))] = table
    usable = [e for e in endpoints if str(e.get("State", "available")).lower() == "available"]
    found: dict[str, SubnetNetwork] = {}
    for subnet in subnets:
        subnet_id, vpc_id = str(subnet["SubnetId"]), str(subnet.get("VpcId", ""))
        table = by_subnet.get(subnet_id) or main_of_vpc.get(vpc_id)
        table_id = str(table["RouteTableId"]) if table else None
        kinds = {
            _route_kind(route)
            for route in (table or {}).get("Routes") or []
            if route.get("DestinationCidrBlock") == DEFAULT_ROUTE
            and route.get("State", "active") != "blackhole"
        }
        default = next((k for k in ("nat", "igw", "other") if k in kinds), None)
        s3_gateway = next(
            (
                str(e.get("VpcEndpointId"))
                for e in usable
                if e.get("VpcId") == vpc_id
                and str(e.get("VpcEndpointType", "")).lower() == "gateway"
                and _short_service(str(e.get("ServiceName", ""))) == "s3"
                and table_id in (e.get("RouteTableIds") or [])
            ),
            None,
        )
        interfaces = frozenset(
            _short_service(str(e.get("ServiceName", "")))
            for e in usable
            if e.get("VpcId") == vpc_id
            and str(e.get("VpcEndpointType", "")).lower() == "interface"
            and e.get("PrivateDnsEnabled")
        )
        found[subnet_id] = SubnetNetwork(
            subnet_id=subnet_id,
            vpc_id=vpc_id,
            route_table_id=table_id,
            public_ip_on_launch=bool(subnet.get("MapPublicIpOnLaunch")),
            default_route=default,
            s3_gateway_endpoint=s3_gateway,
            interface_endpoints=interfaces,
        )
    return found


def _pages(call: Call, operation: str, key: str, **kwargs: Any) -> list[Mapping[str, Any]]:
    items: list[Mapping[str, Any]] = []
    token = None
    while True:
        page = call(operation, **kwargs, **({"NextToken": token} if token else {}))
        items.extend(page.get(key) or [])
        token = page.get("NextToken")
        if not token:
            return items


def read_subnets(call: Call, subnet_ids: Iterable[str]) -> dict[str, SubnetNetwork]:
    """Read and judge subnets through ``call(operation, **kwargs)`` of an EC2 client.

    Three calls (and their pages): DescribeSubnets, DescribeRouteTables and
    DescribeVpcEndpoints of the subnets' VPCs.
    """
    ids = sorted(set(subnet_ids))
    if not ids:
        return {}
    subnets = call("describe_subnets", SubnetIds=ids).get("Subnets") or []
    vpcs = sorted({str(s.get("VpcId")) for s in subnets})
    tables = _pages(
        call,
        "describe_route_tables",
        "RouteTables",
        Filters=[{"Name": "vpc-id", "Values": vpcs}],
    )
    endpoints = [
        e
        for e in _pages(call, "describe_vpc_endpoints", "VpcEndpoints")
        if e.get("VpcId") in vpcs
    ]
    return subnet_networks(subnets, tables, endpoints)


def subnets_of(env: Mapping[str, Any]) -> list[str]:
    return [str(s) for s in (env.get("computeResources") or {}).get("subnets") or []]


# Judgements ---------------------------------------------------------------------------------


def s3_endpoint_command(net: SubnetNetwork, region: str) -> str:
    return (
        f"aws ec2 create-vpc-endpoint --vpc-id {net.vpc_id} --service-name "
        f"com.amazonaws.{region}.s3 --route-table-ids {net.route_table_id or '<route table>'}"
    )


def _subnets(nets: Sequence[SubnetNetwork]) -> str:
    ids = ", ".join(n.subnet_id for n in nets)
    return f"Subnet {ids}" if len(nets) == 1 else f"Subnets {ids}"


def _grouped(
    nets: Iterable[SubnetNetwork], why: Callable[[SubnetNetwork], str | None]
) -> dict[str, list[SubnetNetwork]]:
    """Subnets with a problem, grouped by the problem's wording (one sentence per group)."""
    groups: dict[str, list[SubnetNetwork]] = {}
    for net in nets:
        text = why(net)
        if text is not None:
            groups.setdefault(text, []).append(net)
    return groups


def _mpi_why(net: SubnetNetwork) -> str | None:
    if net.s3_for_containers or net.s3_unknown:
        return None
    if net.default_route == "igw":
        return "the only way out is an internet gateway"
    return "no route leads out of the VPC"


def mpi_s3_problem(nets: Sequence[SubnetNetwork], env_name: str, region: str) -> str | None:
    """Why MPI node containers in these subnets cannot reach S3 (a message), or None."""
    groups = _grouped(nets, _mpi_why)
    if not groups:
        return None
    sentences = [
        f"{_subnets(group)} of compute environment '{env_name}': {why}, and no S3 gateway "
        "endpoint is on the route table "
        f"({', '.join(sorted({n.route_table_id or 'none' for n in group}))})."
        for why, group in groups.items()
    ]
    first = next(iter(groups.values()))[0]
    return " ".join(sentences) + (
        " The containers of multi-node jobs get no public IP (awsvpc mode), so MPI nodes "
        "there could not reach S3 to read their inputs, store their outputs or read the "
        "job's key. Add a free S3 gateway endpoint to the route table "
        f"(`{s3_endpoint_command(first, region)}`), put the compute environment in private "
        "subnets behind a NAT gateway, or create the queues with `awsbatch-mpi setup`."
    )


def _instance_why(net: SubnetNetwork) -> str | None:
    if net.instances_reach_aws or net.default_route == "other":
        return None
    missing = ", ".join(net.missing_endpoints)
    if net.default_route == "igw":
        return (
            "a route leads to an internet gateway, but instances get no public IP "
            f"(MapPublicIpOnLaunch is off) and no interface endpoints exist for {missing}"
        )
    return f"there is no NAT gateway, no internet gateway and no interface endpoint for {missing}"


def instance_problem(nets: Sequence[SubnetNetwork], env_name: str) -> str | None:
    """Why instances in these subnets cannot reach ECS/ECR/CloudWatch (a message), or None."""
    groups = _grouped(nets, _instance_why)
    if not groups:
        return None
    sentences = [
        f"{_subnets(group)} of compute environment '{env_name}': {why}."
        for why, group in groups.items()
    ]
    return " ".join(sentences) + (
        " Instances there could never reach ECS, ECR and CloudWatch, so the jobs would wait "
        "in RUNNABLE forever. Route 0.0.0.0/0 to a NAT gateway, turn on public IPs with a "
        "route to an internet gateway, or create those interface endpoints (with private DNS) "
        "and an S3 gateway endpoint."
    )


def check_instance_network(
    env_name: str, nets: Sequence[SubnetNetwork | None], subnet_ids: Sequence[str]
) -> CheckResult:
    """Every compute environment: its instances need a way to ECS, ECR and CloudWatch."""
    check = f"network {env_name}"
    missing = [s for s, n in zip(subnet_ids, nets, strict=True) if n is None]
    if missing:
        return failed(
            check,
            f"Compute environment '{env_name}' uses subnet(s) {', '.join(missing)}, which "
            "could not be found. Point it at existing subnets.",
        )
    known = [n for n in nets if n is not None]
    problem = instance_problem(known, env_name)
    if problem:
        return failed(check, problem)
    unknown = [n for n in known if n.default_route == "other" and not n.instances_reach_aws]
    if unknown:
        return warned(
            check,
            f"{_subnets(unknown)} of '{env_name}' route 0.0.0.0/0 to a transit gateway, "
            "peering connection or appliance the doctor cannot follow. Make sure it leads to "
            "the internet, or the jobs stay RUNNABLE.",
        )
    ways = "; ".join(sorted({_way(n) for n in known}))
    return passed(check, f"The instances of '{env_name}' reach ECS, ECR and CloudWatch ({ways}).")


def _way(net: SubnetNetwork) -> str:
    if net.default_route == "nat":
        return "NAT gateway"
    if net.default_route == "igw" and net.public_ip_on_launch:
        return "public IPs and an internet gateway"
    return "interface endpoints"


def _s3_way(net: SubnetNetwork) -> str:
    if net.s3_gateway_endpoint:
        return "an S3 gateway endpoint"
    if net.default_route == "nat":
        return "a NAT gateway"
    return "an S3 interface endpoint"


def check_mpi_network(env_name: str, nets: Sequence[SubnetNetwork], region: str) -> CheckResult:
    """A compute environment of the multinode queue: its node containers need S3."""
    check = f"mpi network {env_name}"
    problem = mpi_s3_problem(nets, env_name, region)
    if problem:
        return failed(check, problem)
    unknown = [n for n in nets if n.s3_unknown]
    if unknown:
        return warned(
            check,
            f"{_subnets(unknown)} of '{env_name}' have no S3 gateway endpoint and route "
            "0.0.0.0/0 to a target the doctor cannot follow; MPI node containers get no "
            "public IP, so make sure that route leads to S3 (or add an S3 gateway endpoint).",
        )
    ways = " and ".join(sorted({_s3_way(n) for n in nets}))
    return passed(
        check, f"MPI node containers of '{env_name}' (no public IP) reach S3 through {ways}."
    )
