"""Strangers cannot stall the rendezvous: real nodes join while ~1,000 hostile connections
(idle, trickling, one oversized frame) hold the main node's port, through the real agent."""

from __future__ import annotations

import resource
import selectors
import socket
import sys
import threading
import time

import pytest

from snakemake_executor_plugin_awsbatch_mpi.mpi import protocol

from .conftest import AGENT

HOSTILE = 1020  # what stalled a real child before (with ECS's default fd limit, 1024)
# The agents run with ECS's default open-file limits (the ECS-optimized AMI's Docker daemon
# gives containers nofile=1024:4096), as on Batch.
LIMITED_AGENT = [
    sys.executable,
    "-c",
    "import os, resource, sys; resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 4096)); "
    "os.execv(sys.argv[1], sys.argv[1:])",
    *AGENT,
]
JOIN_LIMIT = 5.0
TRICKLE_SECONDS = 2.0


def _room_for(sockets: int) -> None:
    """Raise this process's soft fd limit so it can hold the hostile connections."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = sockets + 200
    if soft >= need:
        return
    if hard != resource.RLIM_INFINITY and hard < need:
        pytest.skip(f"needs {need} open files, the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))


def _wait_listening(address: tuple[str, int]) -> None:
    deadline = time.monotonic() + 15
    while True:
        try:
            socket.create_connection(address, timeout=2).close()
            return
        except OSError:
            assert time.monotonic() < deadline, "the main node never listened"
            time.sleep(0.05)


class Attacker:
    """Keeps `count` unauthenticated connections open, reopening those the server drops.

    Each trickles a byte every TRICKLE_SECONDS (slower than any sane handshake, faster than
    a per-read timeout); one more sends a wrong proof followed by an 8 MiB frame. Runs in a
    thread until stopped.
    """

    def __init__(self, address: tuple[str, int], count: int):
        self.address = address
        self.count = count
        self.stop = threading.Event()
        self.opened = 0
        self.reopened = 0
        self.oversized_reply = b""
        self.oversized_seconds = -1.0
        self.selector = selectors.DefaultSelector()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _open(self) -> None:
        sock = socket.socket()
        sock.setblocking(False)
        try:
            sock.connect(self.address)
        except BlockingIOError:
            pass
        except OSError:
            sock.close()
            return
        self.selector.register(sock, selectors.EVENT_READ, self.opened)
        self.opened += 1

    def oversized(self) -> None:
        """A stranger's 8 MiB frame: answered with REJECT after 64 bytes, not read whole."""
        started = time.monotonic()
        with socket.create_connection(self.address, timeout=10) as sock:
            protocol.recv_exact(sock, protocol.HELLO_BYTES)
            sock.sendall(b"\1" * protocol.CLIENT_HELLO_BYTES)
            frame = (8 << 20).to_bytes(4, "big") + b"\0" * 32
            try:
                sock.sendall(frame + b"x" * (8 << 20))
            except OSError:
                pass  # reset by the server: it stopped reading after the proof failed
            try:
                self.oversized_reply = protocol.recv_exact(sock, 4)
            except (OSError, EOFError, protocol.ProtocolError):
                self.oversized_reply = b"closed"
        self.oversized_seconds = time.monotonic() - started

    def _run(self) -> None:
        for _ in range(self.count):
            self._open()
        last_trickle = time.monotonic()
        while not self.stop.is_set():
            for key, _ in self.selector.select(0.1):
                sock = key.fileobj
                try:
                    data = sock.recv(4096)  # type: ignore[union-attr]
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:  # dropped by the server: take its place again
                    self.selector.unregister(sock)
                    sock.close()  # type: ignore[union-attr]
                    self._open()
                    self.reopened += 1
            if time.monotonic() - last_trickle > TRICKLE_SECONDS:
                last_trickle = time.monotonic()
                for key in list(self.selector.get_map().values()):
                    try:
                        key.fileobj.send(b"\0")  # type: ignore[union-attr]
                    except OSError:
                        pass
        for key in list(self.selector.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        self.selector.close()


@pytest.mark.parametrize("hostile", [0, HOSTILE])
def test_nodes_join_while_strangers_hold_the_port(cluster_factory, hostile, capsys):
    _room_for(hostile)
    cluster = cluster_factory(num_nodes=3, join_timeout=40)
    main = cluster.start(0, 'echo "joined_at=$AWSBATCH_MPI_JOINED_AT"', argv=LIMITED_AGENT)
    address = (cluster.address(0), cluster.port)
    _wait_listening(address)
    attacker = Attacker(address, hostile)
    if hostile:
        attacker.thread.start()
        deadline = time.monotonic() + 30
        while attacker.opened < hostile:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(3.0)  # let them pile up on the server
        attacker.oversized()
    try:
        children_started = time.time()
        for index in (1, 2):
            cluster.start(index, argv=LIMITED_AGENT)
        nodes = cluster.wait(timeout=60)
    finally:
        attacker.stop.set()
        if hostile:
            attacker.thread.join(10)
    assert all(node.code == 0 for node in nodes.values()), cluster.logs()
    joined_at = float(main.out.split("joined_at=")[1].split()[0])
    join_seconds = joined_at - children_started
    with capsys.disabled():
        print(
            f"\n3 nodes joined {join_seconds:.2f} s after the children started, with {hostile} "
            f"hostile connections (reopened {attacker.reopened} the server dropped)"
        )
    assert join_seconds < JOIN_LIMIT, cluster.logs()
    if hostile:
        assert attacker.oversized_reply in (protocol.REJECT_BYTES, b"closed")
        assert attacker.oversized_seconds < 5.0
        assert "does not know this job's rendezvous key" in main.err
        assert "dropped" in main.err
