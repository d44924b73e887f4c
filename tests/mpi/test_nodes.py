"""Node agents as separate processes on loopback "nodes": rendezvous, MPI runs, failures."""

from __future__ import annotations

import os
import re
import shutil
import socket
import sys
import time
from pathlib import Path

import pytest

from snakemake_executor_plugin_awsbatch_mpi.mpi import protocol
from snakemake_executor_plugin_awsbatch_mpi.mpi.protocol import secret_key

from .conftest import Cluster, Recorder, needs_mpi

HELLO_LINE = re.compile(r"hello rank=(\d+) size=(\d+) node=(\d+) sum=(\d+)")


def start_all(cluster: Cluster, command: str, main_cwd: Path | None = None, **extra: str):
    """Children first (they must retry until the main node is up), then the main node."""
    for index in range(1, cluster.num_nodes):
        cluster.start(index, **extra)
    cluster.start(0, command, cwd=main_cwd)
    return cluster.wait()


@needs_mpi
def test_three_nodes_two_slots_each(cluster_factory, hello):
    cluster = cluster_factory(num_nodes=3, slots=2)
    work = cluster.tmp / "work"
    work.mkdir()
    shutil.copy(hello, work / "hello")
    nodes = start_all(cluster, "mpirun -n 6 ./hello", main_cwd=work)
    main = nodes[0]
    assert main.code == 0, cluster.logs()
    ranks = {int(m[1]): (int(m[2]), m[3], int(m[4])) for m in HELLO_LINE.finditer(main.out)}
    assert sorted(ranks) == list(range(6)), cluster.logs()
    assert {size for size, _, _ in ranks.values()} == {6}
    assert {total for _, _, total in ranks.values()} == {15}  # the Allreduce crossed nodes
    by_node = [node for _, node, _ in ranks.values()]
    assert sorted(by_node) == ["0", "0", "1", "1", "2", "2"]
    assert all(nodes[i].code == 0 for i in (1, 2)), cluster.logs()
    # Timing lines a benchmark can parse; -n was given, so the shim did not add one.
    assert re.search(r"all 3 nodes joined in [\d.]+ s t=\d+\.\d+", main.err)
    start = re.search(
        r"adding: (.*) t=\d+\.\d+ \(([\d.]+) s after the last node joined\)", main.err
    )
    assert start, main.err
    assert "-n 6" not in start[1]
    if os.getloadavg()[0] < 2 * (os.cpu_count() or 1):  # meaningless on a swamped machine
        assert float(start[2]) < 1.0, "bootstrap overhead above 1 s"
    # One host filesystem: the working directory is shared, nothing is copied.
    assert "is shared with node(s) 1, 2: not copied" in main.err
    assert "is shared with the main node" in nodes[1].err


@needs_mpi
def test_failing_rank_sets_the_exit_code(cluster_factory, hello):
    cluster = cluster_factory(num_nodes=3, slots=2)
    # Like Snakemake, the command exits 1 whatever failed; no -n: the shim adds -n 6.
    command = f"FAIL_RANK=3 FAIL_CODE=7 mpirun -x FAIL_RANK -x FAIL_CODE {hello} || exit 1"
    nodes = start_all(cluster, command)
    main = nodes[0]
    assert main.code == 7, cluster.logs()
    assert "rank 3 on node 1: simulated failure" in main.out + main.err
    assert re.search(r"adding: --hostfile \S+ -n 6 ", main.err)
    # Open MPI's own report, read by the shim and summed up (mpi/diagnose.py)
    assert "mpirun exited with 7: rank 3 exited with code 7" in main.err
    assert all(nodes[i].code == 0 for i in (1, 2)), cluster.logs()


@needs_mpi
def test_single_node_job(cluster_factory, hello):
    """nodes=1: no children, the main node advertises 127.0.0.1 unless told otherwise."""
    cluster = cluster_factory(num_nodes=1, slots=2)
    cluster.start(0, f"mpirun {hello}", AWSBATCH_MPI_LOCAL_NODE_ADDRESS="")
    main = cluster.wait()[0]
    assert main.code == 0, cluster.logs()
    assert len(HELLO_LINE.findall(main.out)) == 2
    assert "127.0.0.1 slots=2" in main.err


def test_missing_node_fails_the_job_after_the_join_timeout(cluster_factory):
    cluster = cluster_factory(num_nodes=3, join_timeout=3)
    cluster.start(1)
    started = time.monotonic()
    cluster.start(0, "echo should-not-run")
    nodes = cluster.wait(timeout=60)
    elapsed = time.monotonic() - started
    main = nodes[0]
    assert main.code == 124, cluster.logs()
    assert "nodes 2 did not join within 3 s" in main.err
    assert "should-not-run" not in main.out
    assert 2.5 < elapsed < 30  # failed after the timeout, did not hang
    # The child that did join is told to give up rather than waiting forever.
    assert nodes[1].code == 1
    assert "aborted the job" in nodes[1].err


def test_child_gives_up_when_main_never_answers(cluster_factory):
    cluster = cluster_factory(num_nodes=2, join_timeout=2)
    cluster.start(1)
    child = cluster.wait(timeout=30)[1]
    assert child.code == 1
    assert "did not answer within 2 s" in child.err


def test_wrong_secret_is_rejected(cluster_factory):
    cluster = cluster_factory(num_nodes=2, join_timeout=3)
    cluster.start(0, "echo ran")
    cluster.start(1, AWSBATCH_MPI_KEY_URI=cluster.key_uri("0" * 64))
    nodes = cluster.wait(timeout=60)
    assert nodes[1].code == 1
    assert "rejected our authentication" in nodes[1].err
    assert "differs from the main node's" in nodes[1].err
    assert "rejected a connection" in nodes[0].err
    assert "does not know this job's rendezvous key" in nodes[0].err
    assert nodes[0].code == 124  # the real node 1 never joined
    assert cluster.secret not in nodes[0].err + nodes[1].err


def test_replayed_message_is_rejected_by_a_running_agent(cluster_factory):
    cluster = cluster_factory(num_nodes=2, join_timeout=20)
    cluster.start(0, "echo done")
    secret = secret_key(cluster.secret)
    address = (cluster.address(0), cluster.port)
    deadline = time.monotonic() + 10
    while True:  # wait for the main node to listen
        try:
            sock = socket.create_connection(address, timeout=5)
            break
        except OSError:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    recorder = Recorder(sock)
    channel = protocol.client_handshake(recorder, secret)  # type: ignore[arg-type]
    assert protocol.request(channel, {"op": "ping"}) == {"op": "pong", "node_index": 0}
    channel.close()
    # The same bytes on a new connection: a new server nonce, so the MAC no longer fits.
    with socket.create_connection(address, timeout=5) as replay:
        protocol.recv_exact(replay, len(protocol.MAGIC) + protocol.NONCE_BYTES)
        replay.sendall(bytes(recorder.sent))
        assert protocol.recv_exact(replay, 4) == b"\xff\xff\xff\xff"  # REJECT
        # Closed: with the replayed frame left unread (the proof failed first), the kernel
        # resets the connection instead of a clean EOF.
        try:
            assert replay.recv(1) == b""
        except ConnectionResetError:
            pass
    cluster.start(1)
    nodes = cluster.wait()
    assert nodes[0].code == 0, cluster.logs()
    assert "rejected a connection" in nodes[0].err


def test_hostfiles_and_environment(cluster_factory):
    cluster = cluster_factory(num_nodes=3, slots=4)
    command = (
        'cat "$AWSBATCH_MPI_HOSTFILE"; cat "$AWSBATCH_MPI_HOSTFILE_MPICH"; '
        'echo "nodes=$AWSBATCH_MPI_NODES"; type -P mpirun; '
        'stat -c %a "$(dirname "$AWSBATCH_MPI_HOSTFILE")"; '
        # A rule's conda environment puts its own mpirun first on PATH: the exported bash
        # functions still lead to the shims.
        'PATH="$PWD/fake:$PATH"; type -t mpirun; bash -c "type -t mpiexec"'
    )
    for index in (2, 1):  # join order must not matter
        cluster.start(index)
    cluster.start(0, command)
    main = cluster.wait()[0]
    assert main.code == 0, cluster.logs()
    lines = main.out.splitlines()
    assert lines[:7] == [
        "127.0.0.2 slots=4",
        "127.0.0.3 slots=4",
        "127.0.0.4 slots=4",
        "127.0.0.2:4",
        "127.0.0.3:4",
        "127.0.0.4:4",
        "nodes=127.0.0.2,127.0.0.3,127.0.0.4",
    ]
    assert lines[7].endswith("/bin/mpirun") and "awsbatch-mpi-" in lines[7]  # the shim
    assert lines[8] == "700"  # private directory
    assert lines[9:] == ["function", "function"]


@needs_mpi
def test_working_directory_is_replicated(cluster_factory, hello):
    """Children extract under their own root (test-only AWSBATCH_MPI_SYNC_ROOT): a copy."""
    cluster = cluster_factory(num_nodes=3, slots=1)
    work = cluster.tmp / "work"
    (work / "data" / "deep").mkdir(parents=True)
    (work / "data" / "input.txt").write_text("payload\n")
    (work / "data" / "deep" / "big.bin").write_bytes(os.urandom(3_000_000))
    (work / "run.sh").write_text("#!/bin/sh\necho run\n")
    (work / "run.sh").chmod(0o755)
    (work / "link").symlink_to("data/input.txt")
    (work / "escape").symlink_to("/etc/passwd")  # refused by the receiver, not fatal
    shutil.copy(hello, work / "hello")
    roots = {i: cluster.tmp / f"root{i}" for i in (1, 2)}
    for index in (1, 2):
        cluster.start(index, AWSBATCH_MPI_SYNC_ROOT=str(roots[index]))
    cluster.start(0, "echo late > written-after.txt; mpirun ./hello", cwd=work)
    nodes = cluster.wait()
    main = nodes[0]
    assert main.code == 0, cluster.logs()
    assert len(HELLO_LINE.findall(main.out)) == 3
    for index, root in roots.items():
        copy = root / str(work).lstrip("/")
        assert (copy / "data" / "input.txt").read_text() == "payload\n"
        assert (copy / "data" / "deep" / "big.bin").read_bytes() == (
            work / "data" / "deep" / "big.bin"
        ).read_bytes()
        assert os.access(copy / "run.sh", os.X_OK)
        assert os.readlink(copy / "link") == "data/input.txt"
        assert not (copy / "escape").exists()
        assert (copy / "written-after.txt").read_text() == "late\n"  # copied at launch time
        assert not list(copy.glob(".awsbatch-mpi-sync-*"))
        assert "received working directory" in nodes[index].err
        assert "lost when the job ends" in nodes[index].err
    assert not list(work.glob(".awsbatch-mpi-sync-*"))  # marker cleaned up
    assert re.search(r"copied working directory to node 1 \(\d+ files, 3\.\d MB", main.err)
    assert "lost when the job ends" in main.err


def test_rsh_runs_commands_on_other_nodes(cluster_factory):
    cluster = cluster_factory(num_nodes=2)
    work = cluster.tmp / "work"
    work.mkdir()
    rsh = '"$AWSBATCH_MPI_BIN_DIR/awsbatch-mpi-rsh"'
    command = (
        f"{rsh} -x -o BatchMode=yes 127.0.0.3 'echo out-$AWS_BATCH_JOB_NODE_INDEX; pwd; "
        f"echo err >&2; exit 5'; echo rc=$?; "
        # stdin is not forwarded (MPI daemons never read it; rank 0's input is mpirun's).
        f"echo piped | {rsh} 127.0.0.3 cat; echo rc2=$?; "
        # Killing the rsh agent kills the remote command.
        f"{rsh} 127.0.0.3 'echo $$ > remote.pid; exec sleep 60' & "
        "while [ ! -s remote.pid ]; do sleep 0.05; done; kill $!; wait; "
        "pid=$(cat remote.pid); for i in $(seq 100); do kill -0 $pid 2>/dev/null || break; "
        "sleep 0.05; done; kill -0 $pid 2>/dev/null && echo remote-alive || echo remote-gone"
    )
    cluster.start(1)
    cluster.start(0, command, cwd=work)
    main = cluster.wait()[0]
    assert main.code == 0, cluster.logs()
    lines = main.out.splitlines()
    assert lines[:3] == ["out-1", str(work), "rc=5"]
    assert "err" in main.err
    assert "piped" not in lines and "rc2=0" in lines
    assert lines[-1] == "remote-gone"


@pytest.mark.parametrize("signal_name", ["SIGTERM"])
def test_terminating_the_main_node_stops_the_command(cluster_factory, signal_name):
    cluster = cluster_factory(num_nodes=2)
    work = cluster.tmp / "work"
    work.mkdir()
    cluster.start(1)
    main = cluster.start(0, "echo $$ > cmd.pid; exec sleep 60", cwd=work)
    deadline = time.monotonic() + 10
    while not (work / "cmd.pid").exists() or not (work / "cmd.pid").read_text().strip():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(main.proc.pid, getattr(__import__("signal"), signal_name))
    nodes = cluster.wait(timeout=60)
    assert nodes[0].code == 143, cluster.logs()
    assert nodes[1].code == 0
    pid = int((work / "cmd.pid").read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def connect_when_up(address: tuple[str, int], secret: bytes) -> protocol.Channel:
    deadline = time.monotonic() + 10
    while True:
        try:
            return protocol.connect(*address, secret)
        except OSError:
            assert time.monotonic() < deadline
            time.sleep(0.05)


def test_duplicate_and_unknown_nodes_are_refused(cluster_factory):
    cluster = cluster_factory(num_nodes=3, join_timeout=2)
    cluster.start(0, "echo should-not-run")
    secret = secret_key(cluster.secret)
    address = (cluster.address(0), cluster.port)

    channels = []  # a joined node whose connection closes is lost: keep them open

    def join(index: int) -> dict:
        channel = connect_when_up(address, secret)
        channels.append(channel)
        channel.send_json({"op": "join", "node_index": index, "address": "127.0.0.9", "slots": 1})
        return channel.recv_json()

    assert join(1)["op"] == "welcome"
    assert join(1) == {"op": "error", "message": "node 1 already joined"}
    assert join(0)["message"] == "node index 0 is not a child of this job"
    assert join(7)["message"] == "node index 7 is not a child of this job"
    main = cluster.wait()[0]
    assert main.code == 124
    assert "nodes 2 did not join" in main.err
    assert "should-not-run" not in main.out


def test_contract_entry_point(cluster_factory):
    """The container command the plugin uses on every node, unchanged."""
    cluster = cluster_factory(num_nodes=2)
    argv = ["/bin/bash", "-c", "exec python -m snakemake_executor_plugin_awsbatch_mpi.mpi"]
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', os.defpath)}"
    cluster.start(1, argv=argv, PATH=path)
    cluster.start(0, 'echo "contract-ok $AWSBATCH_MPI_NODES"', argv=argv, PATH=path)
    nodes = cluster.wait()
    assert nodes[0].code == 0, cluster.logs()
    assert nodes[0].out.strip() == "contract-ok 127.0.0.2,127.0.0.3"
    assert nodes[1].code == 0, cluster.logs()


@needs_mpi
def test_mpirun_reached_through_a_symlink_starts_remote_daemons_as_on_path(
    cluster_factory, hello
):
    """Open MPI 4 started by an absolute path takes its directory as --prefix and looks
    for <dir>/orted on the other nodes; a symlinked mpirun (a conda or module directory)
    has no orted next to it. The shim starts it as a shell would: by name."""
    cluster = cluster_factory(num_nodes=2, slots=2)
    links = cluster.tmp / "links" / "bin"
    links.mkdir(parents=True)
    (links / "mpirun").symlink_to(os.path.realpath(shutil.which("mpirun")))
    path = f"{links}{os.pathsep}{os.environ['PATH']}"
    cluster.start(1, PATH=path)
    cluster.start(0, f"mpirun -n 4 {hello}", PATH=path)
    nodes = cluster.wait()
    main = nodes[0]
    assert main.code == 0, cluster.logs()
    assert "orted: No such file or directory" not in main.err
    assert sorted(int(m[3]) for m in HELLO_LINE.finditer(main.out)) == [0, 0, 1, 1]
