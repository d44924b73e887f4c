"""Pure parts of the node agent: hostfiles, network, launcher arguments, rsh, config."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from snakemake_executor_plugin_awsbatch_mpi.mpi import agent, hostfile, launch, launch_status, rsh
from snakemake_executor_plugin_awsbatch_mpi.mpi.hostfile import NodeInfo
from snakemake_executor_plugin_awsbatch_mpi.mpi.launcher_args import HYDRA, OPENMPI4, OPENMPI5

NODES = [
    NodeInfo(2, "10.0.1.30", 4, "ip-10-0-1-30"),
    NodeInfo(0, "10.0.1.17", 4, "ip-10-0-1-17"),
    NodeInfo(1, "10.0.2.200", 4, "ip-10-0-2-200"),
]
LOOPBACK = [NodeInfo(i, f"127.0.0.{2 + i}", 2, "vm") for i in range(3)]


# -- hostfiles and network -----------------------------------------------------------------


def test_hostfiles_main_node_first_then_by_index():
    nodes = hostfile.ordered(NODES, main_index=0)
    assert [n.node_index for n in nodes] == [0, 1, 2]
    assert hostfile.render_openmpi(nodes) == (
        "10.0.1.17 slots=4\n10.0.2.200 slots=4\n10.0.1.30 slots=4\n"
    )
    assert hostfile.render_mpich(nodes) == "10.0.1.17:4\n10.0.2.200:4\n10.0.1.30:4\n"
    # A main node that is not node 0 still comes first.
    assert [n.node_index for n in hostfile.ordered(NODES, main_index=2)] == [2, 0, 1]


def test_write_and_read_hostfiles(tmp_path: Path):
    files = hostfile.write_hostfiles(tmp_path, LOOPBACK)
    assert files.openmpi.read_text().splitlines()[0] == "127.0.0.2 slots=2"
    assert files.mpich.read_text().splitlines()[-1] == "127.0.0.4:2"
    assert hostfile.read_nodes(files.nodes) == LOOPBACK


@pytest.mark.parametrize(
    ("addresses", "cidr"),
    [
        (["10.0.1.17", "10.0.2.200", "10.0.1.30"], "10.0.0.0/22"),
        (["10.0.1.17"], "10.0.1.17/32"),
        (["10.0.1.16", "10.0.1.17"], "10.0.1.16/31"),
        (["172.31.5.9", "172.31.200.1"], "172.31.0.0/16"),
        (["127.0.0.2", "127.0.0.3", "127.10.0.4"], "127.0.0.0/8"),
        (["127.0.0.1"], "127.0.0.0/8"),
    ],
)
def test_covering_cidr(addresses, cidr):
    assert hostfile.covering_cidr(addresses) == cidr


def test_shared_hostname():
    assert hostfile.shared_hostname(LOOPBACK)
    assert not hostfile.shared_hostname(NODES)


# -- launcher flavour and arguments --------------------------------------------------------


@pytest.mark.parametrize(
    ("output", "flavour"),
    [
        ("mpirun (Open MPI) 4.1.4\n\nReport bugs to http://www.open-mpi.org/", OPENMPI4),
        ("mpirun (Open MPI) 5.0.5\n\nReport bugs to https://www.open-mpi.org/", OPENMPI5),
        ("prterun (PRRTE) 3.0.6\n", OPENMPI5),
        ("HYDRA build details:\n    Version:  4.0.2\n", HYDRA),
        ("Intel(R) MPI Library for Linux* OS, Version 2021.10", HYDRA),
        ("mpiexec (OpenRTE) 3.1.3", OPENMPI4),
        ("something else", launch.UNKNOWN),
    ],
)
def test_detect_flavour(output, flavour):
    assert launch.detect_flavour(output) == flavour


def plan(flavour, args, env=None, nodes=LOOPBACK, root=False):
    return launch.build_launch(
        flavour,
        "/usr/bin/mpirun",
        args,
        nodes,
        6,
        "/tmp/x/bin/awsbatch-mpi-rsh",
        "/tmp/x/hostfile",
        "/tmp/x/hostfile.mpich",
        env or {},
        root,
    )


@pytest.mark.parametrize(
    ("args", "adds_n"),
    [
        (["./prog"], True),
        (["-n", "4", "./prog"], False),
        (["-np", "4", "./prog"], False),
        (["--np=4", "./prog"], False),
        (["-c", "4", "./prog"], False),
        (["-N", "2", "./prog"], False),
        (["--map-by", "ppr:2:node", "./prog"], False),
        (["--map-by=ppr:2:node", "./prog"], False),
        # -n after the program belongs to the program.
        (["./prog", "-n", "3"], True),
        (["-x", "-n", "./prog"], True),  # -x takes a value: "-n" here is a variable name
        (["--mca", "btl", "self,tcp", "./prog", "-np", "2"], True),
        # MPMD: a count in any section counts.
        (["./a", ":", "-n", "2", "./b"], False),
    ],
)
def test_openmpi_adds_n_only_when_absent(args, adds_n):
    result = plan(OPENMPI4, args)
    assert result.argv[-len(args) :] == args  # the user's arguments are untouched, last
    added = result.argv[1 : len(result.argv) - len(args)]
    assert ("-n" in added) is adds_n
    if adds_n:
        assert added[added.index("-n") + 1] == "6"


def test_openmpi4_plan():
    result = plan(OPENMPI4, ["-n", "6", "./hello"], root=True)
    assert result.argv == ["/usr/bin/mpirun", "--hostfile", "/tmp/x/hostfile", "-n", "6", "./hello"]
    assert result.env == {
        "OMPI_MCA_plm_rsh_agent": "/tmp/x/bin/awsbatch-mpi-rsh",
        "OMPI_MCA_rtc_hwloc_vmhole": "none",
        "OMPI_MCA_btl": "self,tcp",
        "OMPI_MCA_btl_tcp_if_include": "127.0.0.0/8",
        "OMPI_MCA_oob_tcp_if_include": "127.0.0.0/8",
        "PMIX_MCA_gds": "hash",
        "OMPI_ALLOW_RUN_AS_ROOT": "1",
        "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
    }


def test_openmpi_respects_the_users_settings():
    env = {"OMPI_MCA_btl": "self,vader,tcp", "OMPI_MCA_btl_tcp_if_exclude": "docker0"}
    result = plan(OPENMPI4, ["--host", "a,b", "./prog"], env=env, nodes=NODES)
    assert "--hostfile" not in result.argv
    assert "OMPI_MCA_btl" not in result.env
    assert "OMPI_MCA_btl_tcp_if_include" not in result.env  # include + exclude is an error
    assert result.env["OMPI_MCA_oob_tcp_if_include"] == "10.0.0.0/22"
    assert "OMPI_ALLOW_RUN_AS_ROOT" not in result.env


def test_distinct_hostnames_keep_shared_memory():
    assert "OMPI_MCA_btl" not in plan(OPENMPI4, ["./p"], nodes=NODES).env


def test_openmpi5_plan():
    result = plan(OPENMPI5, ["./hello"], root=True)
    assert result.argv[1:5] == ["--hostfile", "/tmp/x/hostfile", "-n", "6"]
    assert result.env["PRTE_MCA_plm_ssh_agent"] == "/tmp/x/bin/awsbatch-mpi-rsh"
    # PRRTE refuses loopback for its own traffic; on real networks it is restricted too.
    assert "PRTE_MCA_oob_tcp_if_include" not in result.env
    aws = plan(OPENMPI5, ["./hello"], nodes=NODES)
    assert aws.env["PRTE_MCA_oob_tcp_if_include"] == "10.0.0.0/22"
    assert result.env["PRTE_ALLOW_RUN_AS_ROOT_CONFIRM"] == "1"
    assert "OMPI_MCA_plm_rsh_agent" not in result.env


def test_hydra_plan():
    result = plan(HYDRA, ["-genv", "A", "1", "./hello"])
    assert result.argv == [
        "/usr/bin/mpirun",
        "-f",
        "/tmp/x/hostfile.mpich",
        "-n",
        "6",
        "-launcher",
        "ssh",
        "-launcher-exec",
        "/tmp/x/bin/awsbatch-mpi-rsh",
        "-genv",
        "A",
        "1",
        "./hello",
    ]
    assert result.env == {}
    given = plan(HYDRA, ["-np", "2", "-hosts", "a,b", "./hello"])
    assert given.argv[1:3] == ["-launcher", "ssh"]


def test_find_real_launcher_skips_shims(tmp_path: Path):
    shims, other, real = tmp_path / "shims", tmp_path / "other", tmp_path / "real"
    for directory in (shims, other, real):
        directory.mkdir()
    agent.write_shims(shims)
    (other / "mpirun").write_text("#!/bin/sh\n# awsbatch-mpi node agent copy\n")
    (other / "mpirun").chmod(0o755)
    (real / "mpirun").write_text("#!/bin/sh\necho real\n")
    (real / "mpirun").chmod(0o755)
    path = os.pathsep.join(map(str, (shims, other, real)))
    assert launch.find_real_launcher("mpirun", path, str(shims)) == str(real / "mpirun")
    assert launch.find_real_launcher("mpiexec", path, str(shims)) is None


# -- rsh -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "host", "command"),
    [
        (["127.0.0.3", "orted", "-mca", "x", "y"], "127.0.0.3", "orted -mca x y"),
        (["-x", "node1", "/bin/proxy --port 3"], "node1", "/bin/proxy --port 3"),
        (["-q", "-o", "StrictHostKeyChecking=no", "-p", "22", "h", "ls"], "h", "ls"),
        (["-oBatchMode=yes", "-n", "user@h", "echo", "hi"], "h", "echo hi"),
        (["-xnT", "h", "true"], "h", "true"),
        (["--", "h", "true"], "h", "true"),
    ],
)
def test_rsh_parses_ssh_style_arguments(argv, host, command):
    assert rsh.parse_args(argv) == rsh.RshCall(host, command)


def test_rsh_requires_host_and_command():
    with pytest.raises(ValueError):
        rsh.parse_args(["-x"])
    with pytest.raises(ValueError, match="interactive"):
        rsh.parse_args(["host"])


def test_rsh_forwards_only_mpi_runtime_settings():
    env = {
        "OMPI_MCA_btl": "self,tcp",
        "PRTE_MCA_plm_ssh_agent": "x",
        "OMPI_ALLOW_RUN_AS_ROOT": "1",
        "PMIX_MCA_gds": "hash",
        "AWS_SECRET_ACCESS_KEY": "no",
        "PATH": "/bin",
    }
    assert rsh.forwarded_env(env) == {
        "OMPI_MCA_btl": "self,tcp",
        "PRTE_MCA_plm_ssh_agent": "x",
        "OMPI_ALLOW_RUN_AS_ROOT": "1",
        "PMIX_MCA_gds": "hash",
    }


# -- agent config and exit codes -----------------------------------------------------------

BASE = {
    "AWSBATCH_MPI_KEY_URI": "s3://bucket/run/.awsbatch-mpi/keys/r1/k1",
    "AWS_BATCH_JOB_NODE_INDEX": "1",
    "AWS_BATCH_JOB_MAIN_NODE_INDEX": "0",
    "AWS_BATCH_JOB_NUM_NODES": "3",
    "AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS": "10.0.0.5",
    "AWSBATCH_MPI_SLOTS": "4",
}


def test_config_defaults():
    config = agent.Config.from_env(BASE)
    assert not config.is_main
    assert (config.port, config.join_timeout, config.tasks) == (47801, 600.0, 12)
    assert config.local_address is None
    assert config.key_uri == "s3://bucket/run/.awsbatch-mpi/keys/r1/k1"
    assert replace(config, secret=b"f" * 64).secret == b"f" * 64
    assert "ffff" not in repr(replace(config, secret=b"f" * 64))  # never in logs


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"AWSBATCH_MPI_KEY_URI": ""}, "AWSBATCH_MPI_KEY_URI"),
        ({"AWSBATCH_MPI_KEY_URI": "f" * 64}, "not an s3:// or file:// URI"),
        ({"AWS_BATCH_JOB_NODE_INDEX": "3"}, "outside"),
        ({"AWSBATCH_MPI_SLOTS": "two"}, "not an integer"),
        ({"AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS": ""}, "child"),
        ({"AWS_BATCH_JOB_NODE_INDEX": "0"}, "AWSBATCH_MPI_COMMAND"),
    ],
)
def test_config_errors(change, message):
    with pytest.raises(agent.ConfigError, match=message):
        agent.Config.from_env({**BASE, **change})


@pytest.mark.parametrize(
    ("command", "launchers", "expected"),
    [
        (0, [], 0),
        (1, [], 1),
        (1, [0, 7], 7),
        (1, [3, 0, 9], 9),
        (1, [0], 1),
        (0, [7], 0),  # the command tolerated the failure (mpirun ... || true)
    ],
)
def test_job_exit_code(command, launchers, expected):
    assert agent.job_exit_code(command, launchers) == expected


def test_read_status(tmp_path: Path):
    status = tmp_path / "status"
    launch_status.record_status(str(status), "start", launcher="/usr/bin/mpirun")
    launch_status.record_status(
        str(status), "exit", code=0, launcher="/usr/bin/mpirun", reason=None
    )
    with open(status, "a") as handle:
        handle.write("garbage\n")
        handle.write('{"event": "start", "pid": 4242}\n'
                     '{"event": "exit", "pid": 4242, "code": 7, "reason": "rank 1 exited"}\n')
        handle.write('{"event": "start", "pid": 4343}\n')
    result = launch_status.read_status(status)
    assert result.codes == [0, 7]
    assert result.reasons == ["rank 1 exited"]
    assert result.pending == {4343}
    assert launch_status.read_status(tmp_path / "missing") == launch_status.LaunchStatus()
    started = time.monotonic()
    assert launch_status.wait_for_launches(status, 0.2).pending == {4343}
    assert time.monotonic() - started >= 0.2


def test_own_address_towards_a_peer():
    """On AWS a child learns the address it advertises from the route to the main node."""
    assert agent.own_address_towards("127.0.0.1") == "127.0.0.1"


def test_run_passes_stderr_on_and_finds_the_reason(capfd, monkeypatch):
    monkeypatch.setattr(launch.signal, "signal", lambda *args: None)  # keep pytest's handlers
    script = (
        "import sys; print('rank output'); "
        "sys.stderr.write('MPI_ABORT was invoked on rank 1 in communicator MPI_COMM_WORLD\\n'"
        " 'with errorcode 3.\\n'); sys.exit(3)"
    )
    code, reason = launch.run([sys.executable, "-c", script], dict(os.environ))
    assert code == 3
    assert reason == (
        "MPI_ABORT was invoked on rank 1 in communicator MPI_COMM_WORLD with errorcode 3"
    )
    out, err = capfd.readouterr()
    assert "rank output" in out  # stdout is not touched
    assert "with errorcode 3." in err  # every stderr line is passed on


def test_run_reports_a_signal_like_a_shell(monkeypatch):
    monkeypatch.setattr(launch.signal, "signal", lambda *args: None)
    script = "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"
    assert launch.run([sys.executable, "-c", script], dict(os.environ)) == (137, None)


def test_run_does_not_wait_for_helpers_holding_stderr(monkeypatch):
    """A remote-launch helper left behind with mpirun's stderr must not hang the shim."""
    monkeypatch.setattr(launch.signal, "signal", lambda *args: None)
    monkeypatch.setattr(launch, "PUMP_GRACE", 0.3)
    script = "import subprocess; subprocess.Popen(['sleep', '5'])"
    started = time.monotonic()
    assert launch.run([sys.executable, "-c", script], dict(os.environ)) == (0, None)
    assert time.monotonic() - started < 4


def test_unknown_launcher_runs_unchanged_and_records_its_exit(tmp_path: Path, monkeypatch):
    """A launcher that is neither Open MPI nor hydra still gets its exit code recorded."""
    monkeypatch.setattr(launch.signal, "signal", lambda *args: None)
    real_dir, bin_dir, agent_dir = (tmp_path / d for d in ("real", "bin", "agent"))
    for d in (real_dir, bin_dir, agent_dir):
        d.mkdir()
    fake = real_dir / "mpirun"
    fake.write_text('#!/bin/sh\n[ "$1" = --version ] && { echo "SomeMPI 1.0"; exit 0; }\n'
                    'echo "ran with $*" >&2\nexit 3\n')
    fake.chmod(0o755)
    status = agent_dir / "status"
    monkeypatch.setattr(launch.os, "environ", {
        "PATH": f"{bin_dir}{os.pathsep}{real_dir}{os.pathsep}/usr/bin:/bin",
        launch.ENV_BIN_DIR: str(bin_dir),
        launch.ENV_DIR: str(agent_dir),
        launch.ENV_STATUS_FILE: str(status),
    })
    assert launch.main(["-n", "2", "prog"]) == 3
    recorded = launch_status.read_status(status)
    assert recorded.codes == [3] and recorded.pending == set()
