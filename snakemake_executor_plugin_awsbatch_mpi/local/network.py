"""What an emulated multi-node node may reach, decided the way AWS decides it.

On AWS the nodes of a multi-node job run in ECS ``awsvpc`` mode: each node's container has
its own network interface in a subnet of the compute environment and never a public IP. So
a node reaches S3 only through an S3 gateway endpoint on the subnet's route table or a NAT
gateway, and other AWS APIs and the internet only through a NAT gateway (see
`ops.network`). Single-container jobs use the instance's network and are not affected.

The emulation asks the same question of its own (moto) VPC, with the very code the doctor
uses, when a multi-node attempt starts. A node whose compute environment could not reach S3
on AWS gets an ``AWS_ENDPOINT_URL`` that refuses every connection, the way its S3 calls would
fail on AWS (there: a connection timeout), and its log starts with a line that says why;
with only an S3 gateway endpoint, ``AWS_ENDPOINT_URL_S3`` still leads to the emulation's S3
while every other AWS API is refused. The emulation's own compute environments are built as
`awsbatch-mpi setup` builds them (public subnet, internet gateway, S3 gateway endpoint).
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..ops.network import SubnetNetwork, mpi_s3_problem, read_subnets

logger = logging.getLogger(__name__)

ENDPOINT_ENV = "AWS_ENDPOINT_URL"
S3_ENDPOINT_ENV = "AWS_ENDPOINT_URL_S3"
NOTE_PREFIX = "[awsbatch-mpi local emulation]"


@dataclass(frozen=True)
class NodeNetwork:
    """What a node's container reaches outside its VPC, and the note for its log."""

    s3: bool = True
    other_aws: bool = True
    note: str | None = None

    @property
    def unrestricted(self) -> bool:
        return self.s3 and self.other_aws


OPEN = NodeNetwork()


def judge(nets: Sequence[SubnetNetwork], env_name: str, region: str) -> NodeNetwork:
    """A node's reach from its compute environment's subnets (pure).

    Batch may place a node in any subnet of the compute environment: the emulation is strict
    and withholds what any of them lacks (the doctor fails such a setup too).
    """
    if not nets:
        return OPEN
    problem = mpi_s3_problem(nets, env_name, region)
    if problem:
        return NodeNetwork(
            s3=False,
            other_aws=False,
            note=(
                f"{NOTE_PREFIX} This node cannot reach S3 or any other AWS API, as on AWS: "
                f"{problem}"
            ),
        )
    if all(n.default_route in ("nat", "other") for n in nets):
        return OPEN
    return NodeNetwork(s3=True, other_aws=False)


def node_environment(
    env: Mapping[str, str], network: NodeNetwork, endpoint_url: str, refused_url: str
) -> dict[str, str]:
    """The container environment with the endpoints the node may not reach refused (pure).

    Service-specific ``AWS_ENDPOINT_URL_<SERVICE>`` variables would bypass the refused
    ``AWS_ENDPOINT_URL``, so they go too; S3's is set again when the node may reach S3.
    """
    if network.unrestricted:
        return dict(env)
    result = {k: v for k, v in env.items() if not k.startswith(f"{ENDPOINT_ENV}_")}
    result[ENDPOINT_ENV] = refused_url
    if network.s3:
        result[S3_ENDPOINT_ENV] = endpoint_url
    return result


def compute_environment_subnets(job: Any) -> tuple[str, list[str]]:
    """(name, subnets) of the compute environment a moto job runs in (its queue's first)."""
    environments = getattr(job.job_queue, "environments", None) or []
    if not environments:
        return "", []
    env = environments[0]
    resources = getattr(env, "compute_resources", None) or {}
    return str(env.name), [str(s) for s in resources.get("subnets") or []]


_clients: dict[tuple[str, str], Any] = {}
_clients_lock = threading.Lock()


def _ec2(endpoint_url: str, region: str) -> Any:
    """One EC2 client per emulation endpoint (making one costs 0.1-3 s; they are
    thread-safe)."""
    with _clients_lock:
        client = _clients.get((endpoint_url, region))
        if client is None:
            import boto3

            from ._common import CLIENT_ACCESS_KEY_ID, CLIENT_SECRET_ACCESS_KEY

            client = boto3.session.Session(
                aws_access_key_id=CLIENT_ACCESS_KEY_ID,
                aws_secret_access_key=CLIENT_SECRET_ACCESS_KEY,
                region_name=region,
            ).client("ec2", endpoint_url=endpoint_url)
            _clients[(endpoint_url, region)] = client
        return client


def node_network(job: Any, endpoint_url: str, region: str) -> NodeNetwork:
    """The reach of the nodes of a multi-node moto job, read from the emulation's EC2."""
    env_name, subnet_ids = compute_environment_subnets(job)
    if not subnet_ids:
        return OPEN
    ec2 = _ec2(endpoint_url, region)
    try:
        nets = read_subnets(lambda op, **kw: getattr(ec2, op)(**kw), subnet_ids)
    except Exception as err:  # noqa: BLE001 - a subnet moto does not know: AWS would refuse it
        logger.warning(
            "Could not read the subnets of compute environment %s (%s), so its multi-node "
            "nodes are given every AWS API, as if they had a NAT gateway.",
            env_name,
            err,
        )
        return OPEN
    return judge([nets[s] for s in subnet_ids if s in nets], env_name, region)


class RefusedPort:
    """A port on ``host`` that refuses every connection, as long as this object lives.

    The socket is bound but never listens, so the kernel answers every connection attempt
    with a reset (ECONNREFUSED) and no other program can take the port meanwhile.
    """

    def __init__(self, host: str = "127.0.0.1"):
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind((host, 0))
        self.host, self.port = self._socket.getsockname()[:2]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def close(self) -> None:
        self._socket.close()
