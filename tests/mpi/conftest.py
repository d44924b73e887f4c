"""Run node agents as real processes on loopback "nodes" (127.0.0.2, .3, ...), no Batch.

Each node gets the environment AWS Batch and the plugin would give it, plus
AWSBATCH_MPI_LOCAL_NODE_ADDRESS (its own loopback address), as in the local emulation.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from snakemake_executor_plugin_awsbatch_mpi import mpi

# Through _bootstrap, so these tests do not depend on the rest of the plugin importing
# (Snakemake, boto3); test_contract_entry_point runs the real container command.
AGENT = [sys.executable, str(Path(mpi.__file__).with_name("_bootstrap.py")), "agent"]
HELLO_C = r"""
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* Prints rank, size and the node index of the process; with FAIL_RANK=r, rank r prints a
   message and exits with FAIL_CODE (default 7) while the others wait in a barrier. */
int main(int argc, char **argv) {
    int rank, size, sum = 0;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    const char *node = getenv("AWS_BATCH_JOB_NODE_INDEX");
    const char *fail = getenv("FAIL_RANK");
    if (fail && atoi(fail) == rank) {
        const char *code = getenv("FAIL_CODE");
        fprintf(stderr, "rank %d on node %s: simulated failure\n", rank, node ? node : "?");
        fflush(stderr);
        exit(code ? atoi(code) : 7);
    }
    MPI_Allreduce(&rank, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    printf("hello rank=%d size=%d node=%s sum=%d\n", rank, size, node ? node : "?", sum);
    fflush(stdout);
    MPI_Finalize();
    return 0;
}
"""


class Recorder:
    """A socket that remembers everything sent through it (to replay it in tests)."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.sent = bytearray()

    def sendall(self, data: bytes) -> None:
        self.sent += data
        self.sock.sendall(data)

    def __getattr__(self, name):
        return getattr(self.sock, name)


def strip_env(env: dict[str, str]) -> dict[str, str]:
    """The test runner's environment without anything that could leak into the nodes."""
    return {
        k: v
        for k, v in env.items()
        if not k.startswith(("AWS_BATCH_", "AWSBATCH_MPI_", "OMPI_", "PRTE_", "PMIX_"))
    }


def free_port(addresses: list[str]) -> int:
    """A port that is free on every given address (each node binds its own)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind((addresses[0], 0))
            port = probe.getsockname()[1]
        try:
            for address in addresses[1:]:
                with socket.socket() as other:
                    other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    other.bind((address, port))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port")


class NamespaceNetwork:
    """Nodes in network namespaces of their own on one bridge, so one node's network can be
    cut (as a lost instance or a partition: no connection is closed, packets just vanish).

    Needs root and ``ip``; everything lives in namespaces this class creates (never on the
    host's interfaces) and is deleted by ``close``.
    """

    SUBNET = "10.77.0"

    def __init__(self, num_nodes: int):
        self.tag = f"nl{os.getpid() % 100000}{secrets.token_hex(2)}"
        self.bridge = f"{self.tag}-br"
        self.names = [f"{self.tag}-n{i}" for i in range(num_nodes)]
        self._created: list[str] = []
        try:
            self._ip("netns", "add", self.bridge)
            self._created.append(self.bridge)
            self._ip("-n", self.bridge, "link", "add", "br0", "type", "bridge")
            self._ip("-n", self.bridge, "link", "set", "br0", "up")
            for index, name in enumerate(self.names):
                self._ip("netns", "add", name)
                self._created.append(name)
                self._ip("-n", name, "link", "set", "lo", "up")
                port = f"p{index}"
                self._ip(
                    "-n", name, "link", "add", "eth0", "type", "veth", "peer", "name", port,
                    "netns", self.bridge,
                )  # fmt: skip
                self._ip("-n", name, "addr", "add", f"{self.address(index)}/24", "dev", "eth0")
                self._ip("-n", name, "link", "set", "eth0", "up")
                self._ip("-n", self.bridge, "link", "set", port, "master", "br0")
                self._ip("-n", self.bridge, "link", "set", port, "up")
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _ip(*args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True, text=True)

    def address(self, index: int) -> str:
        return f"{self.SUBNET}.{2 + index}"

    def prefix(self, index: int) -> list[str]:
        return ["ip", "netns", "exec", self.names[index]]

    def cut(self, index: int) -> None:
        """Unplug the node from the bridge: its packets go nowhere, nothing is closed."""
        self._ip("-n", self.bridge, "link", "set", f"p{index}", "nomaster")

    def close(self) -> None:
        for name in reversed(self._created):
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
        self._created.clear()


def netns_problem() -> str | None:
    """Why network namespaces cannot be used here, or None."""
    if os.geteuid() != 0 or not shutil.which("ip"):
        return "needs root and iproute2 to put nodes in network namespaces"
    probe = f"nlprobe{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"cannot create a network namespace: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


@dataclass
class Node:
    index: int
    address: str
    proc: subprocess.Popen[str]
    cwd: Path
    out: str = ""
    err: str = ""

    @property
    def code(self) -> int | None:
        return self.proc.returncode


@dataclass
class Cluster:
    """Starts node agents; everything started is killed at teardown."""

    tmp: Path
    num_nodes: int = 3
    slots: int = 2
    tasks: int | None = None
    secret: str = field(default_factory=lambda: secrets.token_hex(32))
    join_timeout: float = 20.0
    first_octet: int = 2
    nodes: dict[int, Node] = field(default_factory=dict)
    netns: NamespaceNetwork | None = None

    def __post_init__(self) -> None:
        if self.netns is not None:
            self.port = mpi.DEFAULT_PORT  # fresh namespaces: every port is free
        else:
            self.port = free_port([self.address(i) for i in range(self.num_nodes)])

    def address(self, index: int) -> str:
        if self.netns is not None:
            return self.netns.address(index)
        return f"127.0.0.{self.first_octet + index}"

    def key_uri(self, secret: str | None = None) -> str:
        """A file:// key URI holding secret (the cluster's own by default)."""
        secret = self.secret if secret is None else secret
        path = self.tmp / f"key-{secret[:8]}"
        path.write_text(secret)
        return f"file://{path}"

    def env(self, index: int, command: str = "", **extra: str) -> dict[str, str]:
        env = strip_env(dict(os.environ))
        env.update(
            {
                "AWS_BATCH_JOB_NODE_INDEX": str(index),
                "AWS_BATCH_JOB_MAIN_NODE_INDEX": "0",
                "AWS_BATCH_JOB_NUM_NODES": str(self.num_nodes),
                "AWSBATCH_MPI_KEY_URI": self.key_uri(),
                "AWSBATCH_MPI_SLOTS": str(self.slots),
                "AWSBATCH_MPI_TASKS": str(self.tasks or self.slots * self.num_nodes),
                "AWSBATCH_MPI_JOIN_TIMEOUT": str(self.join_timeout),
                "AWSBATCH_MPI_PORT": str(self.port),
                "AWSBATCH_MPI_LOCAL_NODE_ADDRESS": self.address(index),
            }
        )
        if index == 0:
            env["AWSBATCH_MPI_COMMAND"] = command
        else:
            env["AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS"] = self.address(0)
        env.update(extra)
        return env

    def start(
        self,
        index: int,
        command: str = "",
        cwd: Path | None = None,
        argv: list[str] | None = None,
        **extra: str,
    ) -> Node:
        cwd = cwd or self.tmp / f"node{index}"
        cwd.mkdir(parents=True, exist_ok=True)
        # Private TMPDIR per node, as in the emulation (and on Batch, where /tmp is per
        # container): Open MPI daemons on nodes that share a hostname would otherwise race
        # creating the same session directory.
        tmpdir = self.tmp / f"node{index}-tmp"
        tmpdir.mkdir(exist_ok=True)
        extra.setdefault("TMPDIR", str(tmpdir))
        argv = argv or AGENT
        if self.netns is not None:
            argv = [*self.netns.prefix(index), *argv]
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=self.env(index, command, **extra),
            stdin=subprocess.DEVNULL,  # as in a Batch container
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        node = Node(index, self.address(index), proc, cwd)
        self.nodes[index] = node
        return node

    def wait(self, timeout: float = 90.0) -> dict[int, Node]:
        deadline = time.monotonic() + timeout
        for node in self.nodes.values():
            try:
                node.out, node.err = node.proc.communicate(
                    timeout=max(0.1, deadline - time.monotonic())
                )
            except subprocess.TimeoutExpired:
                self.kill()
                try:
                    node.out, node.err = node.proc.communicate(timeout=10)
                except subprocess.TimeoutExpired:  # a leftover process holds its pipes
                    node.out, node.err = "", "(output held open by a leftover process)"
                raise AssertionError(
                    f"node {node.index} did not exit in time\n--- stderr:\n{node.err}"
                ) from None
        return self.nodes

    def kill(self) -> None:
        for node in self.nodes.values():
            if node.proc.poll() is None:
                try:
                    os.killpg(node.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def logs(self) -> str:
        return "\n".join(
            f"--- node {n.index} (exit {n.code}) stdout:\n{n.out}\n--- stderr:\n{n.err}"
            for n in self.nodes.values()
        )


@pytest.fixture
def cluster_factory(tmp_path):
    clusters: list[Cluster] = []

    def make(**kwargs) -> Cluster:
        cluster = Cluster(tmp_path / f"c{len(clusters)}", **kwargs)
        cluster.tmp.mkdir()
        clusters.append(cluster)
        return cluster

    yield make
    for cluster in clusters:
        cluster.kill()
        if cluster.netns is not None:
            for node in cluster.nodes.values():
                try:
                    node.proc.wait(5)
                except subprocess.TimeoutExpired:
                    pass
            cluster.netns.close()


# The check of `make` and the demo (compile and link an MPI program): skipped with its
# reason, or failed under CI=true (tests/conftest.py).
needs_mpi = pytest.mark.usefixtures("usable_mpi")


@pytest.fixture(scope="session")
def hello(tmp_path_factory, usable_mpi) -> Path:
    """The test MPI program, compiled once per session."""
    directory = tmp_path_factory.mktemp("hello")
    source = directory / "hello.c"
    source.write_text(HELLO_C)
    subprocess.run(["mpicc", "-o", str(directory / "hello"), str(source)], check=True)
    return directory / "hello"
