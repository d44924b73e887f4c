"""Measure the node agents' heartbeats: their cost, and how soon a cut node fails the job.

Cost: three agents run ``sleep`` as the job; over a window of the job, the CPU time
(``/proc/<pid>/stat``) of the main node's agent and of one child, and (root only: nodes in
network namespaces) the bytes child 1 sent and received on the wire (its bridge port's
counters: heartbeats with their TCP/IP headers and ACKs), for the default timeout (30 s: a
heartbeat every 10 s) and a tiny one (0.3 s) that magnifies the per-beat cost.

Detection (root only): three agents in network namespaces run ``mpirun -n 6 sleep``; node
2 is unplugged from the bridge and the time until the main node exits is measured.

    python -m benchmarks.mpi_heartbeat [--window 20] [--cut 3,30]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

from tests.mpi.conftest import Cluster, NamespaceNetwork, netns_problem

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rfind(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def wire_bytes(network: NamespaceNetwork | None, index: int) -> int:
    """Bytes node `index` sent plus received, from its bridge port's counters."""
    if network is None:
        return 0
    shown = subprocess.run(
        ["ip", "-j", "-s", "-n", network.bridge, "link", "show", "dev", f"p{index}"],
        capture_output=True, text=True, check=True,
    ).stdout
    stats = json.loads(shown)[0]["stats64"]
    return int(stats["rx"]["bytes"]) + int(stats["tx"]["bytes"])


def cost(root: Path, timeout: float, window: float) -> dict[str, float]:
    network = None if netns_problem() else NamespaceNetwork(3)
    cluster = Cluster(root, num_nodes=3, slots=1, netns=network)
    env = {"AWSBATCH_MPI_HEARTBEAT_TIMEOUT": str(timeout)}
    try:
        for index in (1, 2):
            cluster.start(index, **env)
        cluster.start(0, f"sleep {window + 4}", **env)
        time.sleep(2)  # joined and running
        pids = {"main": cluster.nodes[0].proc.pid, "child": cluster.nodes[1].proc.pid}
        before = {k: cpu_seconds(p) for k, p in pids.items()}
        wire = wire_bytes(network, 1)
        time.sleep(window)
        after = {k: cpu_seconds(p) for k, p in pids.items()}
        wire = wire_bytes(network, 1) - wire
        cluster.wait(60)
    finally:
        cluster.kill()
        if network is not None:
            network.close()
    result = {f"{name} CPU %": 100 * (after[name] - before[name]) / window for name in pids}
    if network is not None:
        result["child 1 wire B/s"] = wire / window
    return result


def detection(root: Path, timeout: float) -> float:
    network = NamespaceNetwork(3)
    cluster = Cluster(root, num_nodes=3, slots=2, netns=network)
    env = {"AWSBATCH_MPI_HEARTBEAT_TIMEOUT": str(timeout)}
    try:
        for index in (1, 2):
            cluster.start(index, **env)
        cluster.start(0, "mpirun -n 6 sleep 3600", **env)
        time.sleep(4)  # joined, mpirun's daemons and ranks running on every node
        if cluster.nodes[0].proc.poll() is not None:
            raise RuntimeError(cluster.logs())
        cut = time.monotonic()
        network.cut(2)
        cluster.nodes[0].proc.wait(timeout + 60)
        elapsed = time.monotonic() - cut
        cluster.wait(60)
    finally:
        cluster.kill()
        network.close()
    if cluster.nodes[0].code != 75:
        raise RuntimeError(cluster.logs())
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=float, default=20.0, help="seconds measured")
    parser.add_argument("--cut", default="3,30", help="heartbeat timeouts to cut a node at")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for timeout in (30.0, 0.3):
            numbers = cost(Path(tmp) / f"cost{timeout}", timeout, args.window)
            shown = ", ".join(f"{k} {v:.2f}" for k, v in numbers.items())
            print(f"heartbeat timeout {timeout:g} s (a beat every {timeout / 3:g} s): {shown}")
        problem = netns_problem()
        if problem:
            print(f"detection not measured: {problem}")
            return
        for raw in args.cut.split(","):
            timeout = float(raw)
            elapsed = detection(Path(tmp) / f"cut{raw}", timeout)
            print(f"heartbeat timeout {timeout:g} s: node 2 cut -> main exited {elapsed:.1f} s")


if __name__ == "__main__":
    main()
