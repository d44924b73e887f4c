"""The ``mpirun``/``mpiexec`` shim: run the real launcher across the job's nodes.

The rule's shell says ``mpirun -n 6 prog``; the rule is not changed. The main node puts a
shim first on PATH that:

1. finds the real launcher further on PATH and asks it for ``--version`` (Open MPI 4,
   Open MPI 5/PRRTE or MPICH/Intel hydra);
2. copies the working directory to every child (skipped where it is the same directory on a
   shared filesystem), so ranks on other nodes find their inputs;
3. starts the real launcher with the job's hostfile, ``-n $AWSBATCH_MPI_TASKS`` when the
   command gives no process count, our ``rsh`` as remote-launch agent (no SSH keys), TCP
   restricted to the nodes' network, and the run-as-root switches when running as root;
4. records the launcher's exit code in ``$AWSBATCH_MPI_STATUS_FILE``: Snakemake exits 1 on
   any failure, and the node agent reports mpirun's code as the job's exit code instead,
   with the one-line reason found in mpirun's failure report (see ``diagnose``).

Whatever the command already says (its own hostfile or hosts, process count, launcher
settings or environment variables) wins over what the shim would add.

This module runs the launcher and records the outcome; the launcher's arguments are decided
in ``launcher_args`` (pure), the copy in ``replicate``, the status file format in
``launch_status``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

from . import (
    DEFAULT_PORT,
    ENV_BIN_DIR,
    ENV_DIR,
    ENV_HOSTFILE,
    ENV_HOSTFILE_MPICH,
    ENV_JOINED_AT,
    ENV_NODE_INDEX,
    ENV_PORT,
    ENV_STATUS_FILE,
    ENV_SYNC,
    ENV_TASKS,
    NO_LAUNCHER,
    RSH_NAME,
    nodelog,
)
from .diagnose import FailureScanner
from .hostfile import HOSTFILE, HOSTFILE_MPICH, NODES_FILE, read_nodes
from .key import load_secret
from .launch_status import record_status
from .launcher_args import (
    FLAVOUR_NAMES,
    UNKNOWN,
    build_launch,
    detect_flavour,
    find_real_launcher,
    launcher_env,
)
from .replicate import replicate_workdir
from .server import exit_code

PUMP_GRACE = 5.0  # seconds to wait for the last stderr lines after mpirun exits


# -- main ----------------------------------------------------------------------------------


def _pump(source: IO[bytes], sink: IO[bytes], scanner: FailureScanner) -> None:
    """Copy the launcher's stderr to ours line by line, showing each line to the scanner."""
    for raw in iter(source.readline, b""):
        try:
            sink.write(raw)
            sink.flush()
        except (OSError, ValueError):
            pass
        scanner.feed(raw.decode(errors="replace"))


def run(argv: list[str], env: dict[str, str], name: str | None = None) -> tuple[int, str | None]:
    """Run the launcher, passing on termination signals.

    The launcher ``argv[0]`` is started under ``name`` (the name the rule called it by, as a
    shell does for a command found on PATH), not under its absolute path: Open MPI 4 takes
    an absolute ``argv[0]`` as ``--prefix`` and starts ``<that dir>/orted`` on the other
    nodes, which fails when the ``mpirun`` on PATH is a symlink into another installation.

    Returns a shell-style exit code and, when the launcher's stderr contains a failure
    report we recognise, its one-line summary. stderr goes through a pipe for that; every
    line is passed on at once, so the log reads as if mpirun wrote it directly.
    """
    proc = subprocess.Popen(
        [name or argv[0], *argv[1:]], executable=argv[0], env=env, stderr=subprocess.PIPE
    )
    assert proc.stderr is not None
    scanner = FailureScanner()
    pump = threading.Thread(
        target=_pump, args=(proc.stderr, sys.stderr.buffer, scanner), daemon=True
    )
    pump.start()

    def forward(signum: int, frame: object) -> None:
        try:
            proc.send_signal(signum)
        except ProcessLookupError:
            pass

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)
    code = proc.wait()
    # Remote-launch helpers may keep the pipe open a little after mpirun exits.
    pump.join(PUMP_GRACE)
    return exit_code(code), scanner.reason


def main(args: list[str], name: str = "mpirun") -> int:
    log = nodelog.setup("launch")
    env = dict(os.environ)
    bin_dir = env.get(ENV_BIN_DIR)
    real = find_real_launcher(name, env.get("PATH", os.defpath), bin_dir)
    if real is None:
        reason = f"{NO_LAUNCHER} ({name})"
        log.error("no real %s found on PATH after the awsbatch-mpi shim: %s", name, reason)
        record_status(env.get(ENV_STATUS_FILE), "exit", code=127, launcher=name, reason=reason)
        return 127
    agent_dir = env.get(ENV_DIR)
    if not agent_dir or not bin_dir:
        # Not under the node agent (e.g. a user ran the shim by hand): stay out of the way.
        os.execv(real, [name, *args])  # argv[0] as on PATH: see ``run``
    try:
        version = subprocess.run(
            [real, "--version"], capture_output=True, text=True, timeout=30, env=env
        )
        flavour = detect_flavour(version.stdout + version.stderr)
    except (OSError, subprocess.TimeoutExpired):
        flavour = UNKNOWN
    status_file = env.get(ENV_STATUS_FILE)
    record_status(status_file, "start", launcher=real)
    if flavour == UNKNOWN:
        log.warning("%s --version is not Open MPI or MPICH hydra; running it unchanged", real)
        return run_and_record([real, *args], env, status_file, real, name)
    nodes = read_nodes(Path(agent_dir) / NODES_FILE)
    me = env.get(ENV_NODE_INDEX, "")
    children = [n for n in nodes if str(n.node_index) != me]
    port = int(env.get(ENV_PORT) or DEFAULT_PORT)
    secret = load_secret(env)
    cwd = Path.cwd()
    if children and env.get(ENV_SYNC, "1") != "0":
        started = time.monotonic()
        try:
            results = replicate_workdir(cwd, children, port, secret, [Path(agent_dir)])
        except Exception as exc:  # any failure means ranks would miss their inputs
            log.error("could not copy the working directory %s to the other nodes: %s", cwd, exc)
            record_status(status_file, "exit", code=1, launcher=real)
            return 1
        copied = [r for r in results if not r.shared]
        shared = [r for r in results if r.shared]
        if shared:
            log.info(
                "working directory %s is shared with node(s) %s: not copied",
                cwd,
                ", ".join(str(r.node.node_index) for r in shared),
            )
        for r in copied:
            assert r.stats is not None
            log.info(
                "copied working directory to node %d (%s) in %.2f s",
                r.node.node_index,
                r.stats.describe(),
                r.seconds,
            )
        if copied:
            log.info(
                "working directory replicated in %.2f s; files that ranks write on other "
                "nodes stay there and are lost when the job ends (write outputs from rank 0)",
                time.monotonic() - started,
            )
    plan = build_launch(
        flavour,
        real,
        args,
        nodes,
        int(env.get(ENV_TASKS) or sum(n.slots for n in nodes)),
        str(Path(bin_dir) / RSH_NAME),
        env.get(ENV_HOSTFILE, str(Path(agent_dir) / HOSTFILE)),
        env.get(ENV_HOSTFILE_MPICH, str(Path(agent_dir) / HOSTFILE_MPICH)),
        env,
        os.geteuid() == 0,
    )
    env.update(plan.env)
    env = launcher_env(env, bin_dir)
    now = time.time()
    overhead = ""
    if env.get(ENV_JOINED_AT):
        overhead = f" ({now - float(env[ENV_JOINED_AT]):.3f} s after the last node joined)"
    log.info(
        "starting %s (%s) on %d nodes, adding: %s %s%s",
        real,
        FLAVOUR_NAMES[flavour],
        len(nodes),
        " ".join(plan.added) or "nothing",
        nodelog.stamp(now),
        overhead,
    )
    return run_and_record(plan.argv, env, status_file, real, name)


def run_and_record(
    argv: list[str], env: dict[str, str], status_file: str | None, real: str, name: str
) -> int:
    """Run the launcher, then record its exit code and failure reason for the agent."""
    code, reason = run(argv, env, name)
    record_status(status_file, "exit", code=code, launcher=real, reason=reason)
    if code != 0:
        nodelog.get().error("%s exited with %d%s", name, code, f": {reason}" if reason else "")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], os.environ.get("AWSBATCH_MPI_LAUNCHER_NAME", "mpirun")))
