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
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
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
    RSH_NAME,
    SHIM_NAMES,
    TOOL_MARK,
    _log,
)
from .diagnose import FailureScanner
from .hostfile import (
    HOSTFILE,
    HOSTFILE_MPICH,
    LOOPBACK_CIDR,
    NODES_FILE,
    NodeInfo,
    covering_cidr,
    read_nodes,
    shared_hostname,
)
from .key import load_secret
from .protocol import connect, request
from .server import exit_code
from .sync import TreeStats, send_tree

OPENMPI4 = "openmpi4"
OPENMPI5 = "openmpi5"
HYDRA = "hydra"
UNKNOWN = "unknown"

FLAVOUR_NAMES = {
    OPENMPI4: "Open MPI 4",
    OPENMPI5: "Open MPI 5 / PRRTE",
    HYDRA: "MPICH hydra",
    UNKNOWN: "unknown launcher",
}

SHIM_MARK = TOOL_MARK.encode()
SYNC_WORKERS = 16
PUMP_GRACE = 5.0  # seconds to wait for the last stderr lines after mpirun exits

# Launcher options that take values (so their values are not mistaken for the program).
OPENMPI_VALUES: dict[str, int] = {
    **dict.fromkeys(("-mca", "--mca", "-gmca", "--gmca", "--prtemca", "--pmixmca"), 2),
    **dict.fromkeys(
        """
            -am --am -app --app --bind-to -bind-to -c -np --np -n --n -N -cf --cartofile
            -cpu-list --cpu-list -cpu-set --cpu-set -cpus-per-proc --cpus-per-proc
            -cpus-per-rank --cpus-per-rank -debugger --debugger -default-hostfile
            --default-hostfile -H -host --host -hnp --hnp -hostfile --hostfile -launch-agent
            --launch-agent -machinefile --machinefile --map-by -map-by -max-restarts
            --max-restarts -max-vm-size --max-vm-size -npernode --npernode -npersocket
            --npersocket -ompi-server --ompi-server -output-filename --output-filename -path
            --path -personality --personality --ppr -ppr --prefix -prefix --preload-files
            -preload-files --rank-by -rank-by -report-events --report-events -report-pid
            --report-pid -report-uri --report-uri -rf --rankfile -stdin --stdin -timeout
            --timeout -tune --tune -wd --wd -wdir --wdir -x -xml-file --xml-file -xterm
            --xterm --output --display --runtime-options --pset --stream-buffering
            --pmix-prefix --dvm --dvm-uri
        """.split(),
        1,
    ),
}
OPENMPI_HOSTS = set(
    """
    -H -host --host -hostfile --hostfile -machinefile --machinefile -default-hostfile
    --default-hostfile -app --app -rf --rankfile
    """.split()
)
OPENMPI_COUNTS = set(
    """
    -n --n -np --np -c -N -npernode --npernode -npersocket --npersocket --ppr -ppr -app
    --app
    """.split()
)

HYDRA_VALUES: dict[str, int] = {
    **dict.fromkeys(("-genv", "-env"), 2),
    **dict.fromkeys(
        """
            -n -np -f -hostfile -machinefile -mfile -hosts -host -ppn -wdir -configfile
            -genvlist -envlist -bootstrap -bootstrap-exec -launcher -launcher-exec -rmk
            -demux -iface -nameserver -prepend-pattern -outfile-pattern -errfile-pattern
            -bind-to -map-by -membind -topolib -ckpointlib -ckpoint-prefix -ckpoint-num
            -ckpoint-interval -tmpdir -usize -gpus-per-proc -gpu-subdevs-per-proc -localhost
            -binding -print-rank-map
        """.split(),
        1,
    ),
}
HYDRA_HOSTS = {"-f", "-hostfile", "-machinefile", "-mfile", "-hosts", "-host", "-configfile"}
HYDRA_COUNTS = {"-n", "-np", "-configfile"}
HYDRA_LAUNCHER = {"-launcher", "-bootstrap", "-launcher-exec", "-bootstrap-exec"}


def detect_flavour(version_output: str) -> str:
    """Which launcher family printed this ``--version`` output."""
    text = version_output
    if "HYDRA" in text or "Intel(R) MPI" in text:
        return HYDRA
    if "PRRTE" in text or "prterun" in text or "prte " in text:
        return OPENMPI5
    match = re.search(r"(?:Open MPI|OpenRTE)\)?\s*(\d+)\.", text)
    if match:
        return OPENMPI5 if int(match.group(1)) >= 5 else OPENMPI4
    return UNKNOWN


def launcher_options(args: Sequence[str], values: Mapping[str, int]) -> set[str]:
    """Names of the launcher options in args, skipping program arguments.

    An MPMD command (``a : -n 2 b``) has option sections after each ``:``.
    """
    seen: set[str] = set()
    i = 0
    in_program = False
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == ":":
            in_program = False
        elif in_program:
            continue
        elif arg.startswith("-") and arg != "-":
            name, eq, value = arg.partition("=")
            seen.add(name)
            if not eq:
                value = args[i] if i < len(args) else ""
                i += values.get(name, 0)
            if name in ("--map-by", "-map-by") and value.startswith("ppr"):
                seen.add("--ppr")  # processes per resource: the count is implied
        else:
            in_program = True
    return seen


def find_real_launcher(name: str, path: str, shim_dir: str | None) -> str | None:
    """The first ``name`` on PATH that is not one of our shims."""
    skip = os.path.realpath(shim_dir) if shim_dir else None
    for directory in path.split(os.pathsep):
        if not directory or (skip and os.path.realpath(directory) == skip):
            continue
        candidate = os.path.join(directory, name)
        if not (os.path.isfile(candidate) and os.access(candidate, os.X_OK)):
            continue
        try:
            with open(candidate, "rb") as handle:
                if SHIM_MARK in handle.read(512):
                    continue
        except OSError:
            continue
        return candidate
    return None


@dataclass
class LaunchPlan:
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)  # additions to the environment
    added: list[str] = field(default_factory=list)  # for the log


def _default(env: Mapping[str, str], updates: dict[str, str], name: str, value: str) -> None:
    if name not in env:
        updates[name] = value


def build_launch(
    flavour: str,
    launcher: str,
    user_args: Sequence[str],
    nodes: Sequence[NodeInfo],
    tasks: int,
    rsh_agent: str,
    hostfile: str,
    hostfile_mpich: str,
    env: Mapping[str, str],
    is_root: bool,
) -> LaunchPlan:
    """The real launcher's argv and environment additions (pure: no I/O)."""
    updates: dict[str, str] = {}
    extra: list[str] = []
    cidr = covering_cidr([n.address for n in nodes])
    if flavour in (OPENMPI4, OPENMPI5):
        seen = launcher_options(user_args, OPENMPI_VALUES)
        if not seen & OPENMPI_HOSTS:
            extra += ["--hostfile", hostfile]
        if not seen & OPENMPI_COUNTS:
            extra += ["-n", str(tasks)]
        if flavour == OPENMPI4:
            updates["OMPI_MCA_plm_rsh_agent"] = rsh_agent
            _default(env, updates, "OMPI_MCA_rtc_hwloc_vmhole", "none")
            runtime = "OMPI_MCA_"
        else:
            updates["PRTE_MCA_plm_ssh_agent"] = rsh_agent
            runtime = "PRTE_MCA_"
        if shared_hostname(nodes):
            # Ranks on different "nodes" would think they share memory, and crash.
            _default(env, updates, "OMPI_MCA_btl", "self,tcp")
        if "OMPI_MCA_btl_tcp_if_exclude" not in env:
            _default(env, updates, "OMPI_MCA_btl_tcp_if_include", cidr)
        # PRRTE's out-of-band transport never uses loopback interfaces, even when told to;
        # with loopback "nodes" (local emulation) it must keep its default choice.
        loopback_only = cidr == LOOPBACK_CIDR
        if f"{runtime}oob_tcp_if_exclude" not in env and not (
            flavour == OPENMPI5 and loopback_only
        ):
            _default(env, updates, f"{runtime}oob_tcp_if_include", cidr)
        _default(env, updates, "PMIX_MCA_gds", "hash")
        if is_root:
            roots = ["OMPI"] + (["PRTE"] if flavour == OPENMPI5 else [])
            for prefix in roots:
                _default(env, updates, f"{prefix}_ALLOW_RUN_AS_ROOT", "1")
                _default(env, updates, f"{prefix}_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    elif flavour == HYDRA:
        seen = launcher_options(user_args, HYDRA_VALUES)
        if not seen & HYDRA_HOSTS:
            extra += ["-f", hostfile_mpich]
        if not seen & HYDRA_COUNTS:
            extra += ["-n", str(tasks)]
        if not seen & HYDRA_LAUNCHER:
            extra += ["-launcher", "ssh", "-launcher-exec", rsh_agent]
    added = list(extra) + [f"{k}={v}" for k, v in updates.items()]
    return LaunchPlan([launcher, *extra, *user_args], updates, added)


def launcher_env(env: Mapping[str, str], bin_dir: str) -> dict[str, str]:
    """The real launcher's environment, without the shims.

    Some launchers are scripts that call ``mpiexec`` by name (Intel MPI's ``mpirun``); found
    through PATH or the exported bash functions, that would be the shim again, which would
    add its arguments a second time.
    """
    functions = {f"BASH_FUNC_{name}%%" for name in SHIM_NAMES}  # see agent.shim_functions
    clean = {k: v for k, v in env.items() if k not in functions}
    skip = os.path.realpath(bin_dir)
    clean["PATH"] = os.pathsep.join(
        part
        for part in env.get("PATH", os.defpath).split(os.pathsep)
        if not part or os.path.realpath(part) != skip
    )
    return clean


# -- working directory replication ---------------------------------------------------------


@dataclass
class SyncResult:
    node: NodeInfo
    shared: bool
    stats: TreeStats | None = None
    seconds: float = 0.0


def _sync_one(
    node: NodeInfo,
    cwd: Path,
    port: int,
    secret: bytes,
    marker: str,
    token: str,
    exclude: Iterable[Path],
) -> SyncResult:
    started = time.monotonic()
    channel = connect(node.address, port, secret)
    try:
        reply = request(channel, {"op": "sync", "path": str(cwd), "marker": marker, "token": token})
        if reply.get("shared"):
            return SyncResult(node, True, seconds=time.monotonic() - started)
        channel.sock.settimeout(None)
        stats = send_tree(channel, cwd, exclude)
        done = channel.recv_json()
        if done["op"] != "synced":
            raise RuntimeError(f"node {node.node_index}: {done.get('message', done['op'])}")
        return SyncResult(node, False, stats, time.monotonic() - started)
    finally:
        channel.close()


def replicate_workdir(
    cwd: Path, children: Sequence[NodeInfo], port: int, secret: bytes, exclude: Sequence[Path]
) -> list[SyncResult]:
    """Copy cwd to every child at the same absolute path, in parallel.

    A marker file with a random token, written here and looked for there, tells whether a
    child sees this very directory (shared filesystem): then nothing is copied.
    """
    token = secrets.token_hex(16)
    marker = f".awsbatch-mpi-sync-{token[:12]}"
    marker_path = cwd / marker
    try:
        marker_path.write_text(token)
    except OSError:
        marker_path = None  # type: ignore[assignment]
    try:
        with ThreadPoolExecutor(max_workers=min(SYNC_WORKERS, len(children))) as pool:
            futures = [
                pool.submit(
                    _sync_one,
                    node,
                    cwd,
                    port,
                    secret,
                    marker,
                    token,
                    [*exclude, cwd / marker],
                )
                for node in children
            ]
            return [f.result() for f in futures]
    finally:
        if marker_path is not None:
            marker_path.unlink(missing_ok=True)


# -- main ----------------------------------------------------------------------------------


def record_status(path: str | None, event: str, **fields: object) -> None:
    """Append a ``start`` or ``exit`` record for this launch to the agent's status file.

    The start record lets the agent wait for a launch still being wound up when the command
    ends first (a launcher that signals its process group on failure can kill the shell
    before the shim has written the exit code).
    """
    if not path:
        return
    record = {"event": event, "pid": os.getpid(), "t": round(time.time(), 3), **fields}
    try:
        with open(path, "a") as handle:
            handle.write(json.dumps(record) + "\n")
    except OSError as exc:
        _log.get().warning("cannot record the launcher's exit code in %s: %s", path, exc)


def _pump(source: IO[bytes], sink: IO[bytes], scanner: FailureScanner) -> None:
    """Copy the launcher's stderr to ours line by line, showing each line to the scanner."""
    for raw in iter(source.readline, b""):
        try:
            sink.write(raw)
            sink.flush()
        except (OSError, ValueError):
            pass
        scanner.feed(raw.decode(errors="replace"))


def run(argv: list[str], env: dict[str, str]) -> tuple[int, str | None]:
    """Run the launcher, passing on termination signals.

    Returns a shell-style exit code and, when the launcher's stderr contains a failure
    report we recognise, its one-line summary. stderr goes through a pipe for that; every
    line is passed on at once, so the log reads as if mpirun wrote it directly.
    """
    proc = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE)
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
    log = _log.setup("launch")
    env = dict(os.environ)
    bin_dir = env.get(ENV_BIN_DIR)
    real = find_real_launcher(name, env.get("PATH", os.defpath), bin_dir)
    if real is None:
        log.error("no real %s found on PATH after the awsbatch-mpi shim", name)
        return 127
    agent_dir = env.get(ENV_DIR)
    if not agent_dir or not bin_dir:
        # Not under the node agent (e.g. a user ran the shim by hand): stay out of the way.
        os.execv(real, [real, *args])
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
        _log.stamp(now),
        overhead,
    )
    return run_and_record(plan.argv, env, status_file, real, name)


def run_and_record(
    argv: list[str], env: dict[str, str], status_file: str | None, real: str, name: str
) -> int:
    """Run the launcher, then record its exit code and failure reason for the agent."""
    code, reason = run(argv, env)
    record_status(status_file, "exit", code=code, launcher=real, reason=reason)
    if code != 0:
        _log.get().error("%s exited with %d%s", name, code, f": {reason}" if reason else "")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], os.environ.get("AWSBATCH_MPI_LAUNCHER_NAME", "mpirun")))
