"""A node that vanishes while the job runs: heartbeats on the control connection notice it.

The nodes run in network namespaces of their own (``NamespaceNetwork``) so that one node's
network can be cut the way a lost instance or a partition cuts it: no connection is closed,
packets just stop arriving. The kill case (the node's processes die, the kernel closes their
connections) is tested on loopback.
"""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pytest

from snakemake_executor_plugin_awsbatch_mpi.mpi import EXIT_NODE_LOST

from .conftest import Cluster, NamespaceNetwork, needs_mpi, netns_problem

HEARTBEAT = 1.5  # seconds; the default is 30
# A sleep duration no other process on the machine uses, to find leftovers by command line.
MARKER = "4321.5"


@pytest.fixture
def netns_cluster(cluster_factory):
    problem = netns_problem()
    if problem:
        pytest.skip(problem)
    networks: list[NamespaceNetwork] = []

    def make(num_nodes: int = 3) -> Cluster:
        network = NamespaceNetwork(num_nodes)
        networks.append(network)
        return cluster_factory(num_nodes=num_nodes, slots=2, netns=network)

    yield make
    for network in networks:  # normally closed by cluster_factory already
        network.close()


def start_job(cluster: Cluster, command: str) -> None:
    env = {"AWSBATCH_MPI_HEARTBEAT_TIMEOUT": str(HEARTBEAT)}
    for index in range(1, cluster.num_nodes):
        cluster.start(index, **env)
    cluster.start(0, command, **env)


def wait_for(cluster: Cluster, index: int, pattern: str, timeout: float = 60.0) -> None:
    """Wait until node `index` prints a line matching pattern on stderr (read as it comes)."""
    node = cluster.nodes[index]
    assert node.proc.stderr is not None
    deadline = time.monotonic() + timeout
    seen = []
    os.set_blocking(node.proc.stderr.fileno(), True)
    while time.monotonic() < deadline:
        line = node.proc.stderr.readline()
        if not line:
            break
        seen.append(line)
        if re.search(pattern, line):
            node.err_head = "".join(seen)  # type: ignore[attr-defined]
            return
    raise AssertionError(f"node {index} never printed {pattern!r}:\n{''.join(seen)}")


def leftovers() -> list[str]:
    """Processes still running the marked sleep (ranks of a job that should be stopped)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if cmdline[:2] == [b"sleep", MARKER.encode()]:
                found.append(entry.name)
    return found


def settle(check, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while (result := check()) and time.monotonic() < deadline:
        time.sleep(0.2)
    return result


@needs_mpi
def test_cut_child_fails_the_job_naming_the_node(netns_cluster):
    cluster = netns_cluster()
    start_job(cluster, f"mpirun -n 6 sleep {MARKER}")
    wait_for(cluster, 0, r"adding: ")  # mpirun is starting its daemons on every node
    time.sleep(1.0)  # ranks running on every node
    cut = time.monotonic()
    cluster.netns.cut(2)
    main = cluster.nodes[0]
    main.proc.wait(60)
    failed_after = time.monotonic() - cut
    nodes = cluster.wait(timeout=60)
    main.err = getattr(main, "err_head", "") + main.err
    assert main.code == EXIT_NODE_LOST, cluster.logs()
    # Silent for the timeout, counted from the last heartbeat before the cut (at most a
    # third of the timeout earlier).
    assert HEARTBEAT * 2 / 3 - 0.1 < failed_after < HEARTBEAT + 10, (failed_after, cluster.logs())
    address = cluster.address(2)
    assert re.search(
        rf"node 2 at {re.escape(address)} was lost \(last heard from at \d\d:\d\d:\d\d UTC, "
        rf"[\d.]+ s earlier\); the job command was stopped \(exit code \d+\) and the other "
        rf"nodes were told to stop: exiting with {EXIT_NODE_LOST}",
        main.err,
    ), cluster.logs()
    # The cut node cannot hear the abort: it notices the main node's silence by itself.
    assert nodes[2].code == EXIT_NODE_LOST, cluster.logs()
    assert f"main node 0 at {cluster.address(0)} was lost (last heard from" in nodes[2].err
    # The other child is told to stop.
    assert nodes[1].code == 1, cluster.logs()
    assert "main node aborted the job: node 2 at" in nodes[1].err
    assert settle(leftovers) == [], "ranks kept running after the job failed"


@needs_mpi
def test_cut_main_node_stops_every_child(netns_cluster):
    cluster = netns_cluster()
    start_job(cluster, f"mpirun -n 6 sleep {MARKER}")
    wait_for(cluster, 0, r"adding: ")
    time.sleep(1.0)
    cut = time.monotonic()
    cluster.netns.cut(0)
    nodes = cluster.wait(timeout=60)
    elapsed = time.monotonic() - cut
    for index in (1, 2):
        assert nodes[index].code == EXIT_NODE_LOST, cluster.logs()
        assert f"main node 0 at {cluster.address(0)} was lost" in nodes[index].err
    assert nodes[0].code == EXIT_NODE_LOST, cluster.logs()
    assert elapsed < HEARTBEAT + 15, (elapsed, cluster.logs())
    assert settle(leftovers) == [], "ranks kept running after the job failed"


@needs_mpi
def test_killed_child_fails_the_job_within_seconds(cluster_factory):
    cluster = cluster_factory(num_nodes=3, slots=2)
    # The default heartbeat timeout (30 s): a closed connection must not wait for it.
    for index in (1, 2):
        cluster.start(index)
    cluster.start(0, f"mpirun -n 6 sleep {MARKER}")
    wait_for(cluster, 0, r"adding: ")
    time.sleep(1.0)
    killed = time.monotonic()
    os.killpg(cluster.nodes[2].proc.pid, signal.SIGKILL)
    main = cluster.nodes[0]
    main.proc.wait(30)
    elapsed = time.monotonic() - killed
    cluster.wait(timeout=30)
    main.err = getattr(main, "err_head", "") + main.err
    assert main.code == EXIT_NODE_LOST, cluster.logs()
    assert elapsed < 10, (elapsed, cluster.logs())
    assert re.search(
        rf"node 2 at {re.escape(cluster.address(2))} was lost \(its control connection "
        r"closed at \d\d:\d\d:\d\d UTC\)",
        main.err,
    ), cluster.logs()
    assert settle(leftovers) == [], "ranks kept running after the job failed"


def test_heartbeats_keep_an_idle_job_alive(cluster_factory):
    """A job quieter than the timeout (no MPI traffic at all) is not mistaken for a loss."""
    cluster = cluster_factory(num_nodes=3, slots=1)
    start_job(cluster, f"sleep {HEARTBEAT * 3}")
    nodes = cluster.wait(timeout=60)
    assert [nodes[i].code for i in range(3)] == [0, 0, 0], cluster.logs()
    assert "was lost" not in cluster.logs()


def test_invalid_heartbeat_timeout_is_a_configuration_error(cluster_factory):
    cluster = cluster_factory(num_nodes=1)
    cluster.start(0, "true", AWSBATCH_MPI_HEARTBEAT_TIMEOUT="soon")
    main = cluster.wait(timeout=30)[0]
    assert main.code == 78
    assert "AWSBATCH_MPI_HEARTBEAT_TIMEOUT='soon' is not a number of seconds" in main.err


def test_a_node_lost_during_the_rendezvous_fails_the_job_at_once(cluster_factory):
    """Node 1 joins and goes away while node 2 is still awaited: no need to wait for the
    join timeout (60 s here), and the command never starts."""
    from snakemake_executor_plugin_awsbatch_mpi.mpi.protocol import secret_key

    from .test_nodes import connect_when_up

    cluster = cluster_factory(num_nodes=3, join_timeout=60)
    started = time.monotonic()
    cluster.start(0, "echo should-not-run")
    channel = connect_when_up((cluster.address(0), cluster.port), secret_key(cluster.secret))
    channel.send_json({"op": "join", "node_index": 1, "address": "127.0.0.9", "slots": 1})
    assert channel.recv_json()["op"] == "welcome"
    channel.close()
    main = cluster.wait(timeout=30)[0]
    assert main.code == EXIT_NODE_LOST, cluster.logs()
    assert time.monotonic() - started < 20
    assert re.search(
        r"node 1 at 127\.0\.0\.9 was lost \(its control connection closed at [\d:]+ UTC\); "
        r"the job command never started",
        main.err,
    ), main.err
    assert "should-not-run" not in main.out
