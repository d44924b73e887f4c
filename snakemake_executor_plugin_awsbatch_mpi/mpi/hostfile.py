"""The nodes of a job as MPI launchers want them: hostfiles and the network they share."""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

NODES_FILE = "nodes.json"
HOSTFILE = "hostfile"
HOSTFILE_MPICH = "hostfile.mpich"
LOOPBACK_CIDR = "127.0.0.0/8"


@dataclass(frozen=True)
class NodeInfo:
    """What a node reported when it joined."""

    node_index: int
    address: str
    slots: int
    hostname: str


def ordered(nodes: Sequence[NodeInfo], main_index: int) -> list[NodeInfo]:
    """Main node first (rank 0 runs there, next to Snakemake), then by node index."""
    return sorted(nodes, key=lambda n: (n.node_index != main_index, n.node_index))


def render_openmpi(nodes: Sequence[NodeInfo]) -> str:
    return "".join(f"{n.address} slots={n.slots}\n" for n in nodes)


def render_mpich(nodes: Sequence[NodeInfo]) -> str:
    return "".join(f"{n.address}:{n.slots}\n" for n in nodes)


def covering_cidr(addresses: Sequence[str]) -> str:
    """The smallest IPv4 network that holds every node address.

    MPI's TCP transports must stay on the network the nodes share (a container also sees
    docker bridges and the like). Loopback addresses (local emulation) give 127.0.0.0/8:
    the ``lo`` interface carries 127.0.0.1/8, and Open MPI keeps an interface only when
    its own address lies inside the given network, so a narrower 127.x network would drop it.
    """
    if not addresses:
        raise ValueError("no node addresses")
    ips = [ipaddress.IPv4Address(a) for a in addresses]
    if all(ip.is_loopback for ip in ips):
        return LOOPBACK_CIDR
    values = [int(ip) for ip in ips]
    differing = 0
    for value in values[1:]:
        differing |= value ^ values[0]
    prefix = 32 - differing.bit_length()
    network = ipaddress.IPv4Network((values[0], prefix), strict=False)
    return str(network)


def shared_hostname(nodes: Sequence[NodeInfo]) -> bool:
    """True when two nodes report the same hostname (local emulation, host networking).

    Open MPI's shared-memory transport then believes the ranks share a machine and
    crashes, so the launcher restricts it to TCP.
    """
    names = [n.hostname for n in nodes]
    return len(set(names)) < len(names)


@dataclass(frozen=True)
class HostFiles:
    openmpi: Path
    mpich: Path
    nodes: Path


def write_hostfiles(directory: Path, nodes: Sequence[NodeInfo]) -> HostFiles:
    """Write both hostfile formats and the node list (read by the launcher shim)."""
    files = HostFiles(directory / HOSTFILE, directory / HOSTFILE_MPICH, directory / NODES_FILE)
    files.openmpi.write_text(render_openmpi(nodes))
    files.mpich.write_text(render_mpich(nodes))
    files.nodes.write_text(json.dumps([asdict(n) for n in nodes], indent=1) + "\n")
    return files


def read_nodes(path: str | os.PathLike[str]) -> list[NodeInfo]:
    return [NodeInfo(**item) for item in json.loads(Path(path).read_text())]
