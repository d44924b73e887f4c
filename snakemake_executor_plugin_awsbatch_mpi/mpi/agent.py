"""The node agent: rendezvous, then run the job (main node) or serve the main node (children).

See the package docstring for the whole flow and ``protocol`` for the wire format.
"""

from __future__ import annotations

import json
import os
import resource
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from . import (
    DEFAULT_JOIN_TIMEOUT,
    DEFAULT_PORT,
    ENV_BIN_DIR,
    ENV_COMMAND,
    ENV_DIR,
    ENV_HOSTFILE,
    ENV_HOSTFILE_MPICH,
    ENV_JOIN_TIMEOUT,
    ENV_JOINED_AT,
    ENV_KEY_FILE,
    ENV_KEY_URI,
    ENV_LOCAL_NODE_ADDRESS,
    ENV_MAIN_ADDRESS,
    ENV_MAIN_NODE_INDEX,
    ENV_NODE_INDEX,
    ENV_NODES,
    ENV_NUM_NODES,
    ENV_PORT,
    ENV_SLOTS,
    ENV_STATUS_FILE,
    ENV_SYNC_ROOT,
    ENV_TASKS,
    EXIT_CONFIG,
    EXIT_JOIN_TIMEOUT,
    EXIT_NODE_LOST,
    RSH_NAME,
    SHIM_NAMES,
    TOOL_MARK,
    command_shell,
    nodelog,
)
from .heartbeat import Heartbeat, Silence, heartbeat_timeout
from .hostfile import NodeInfo, ordered, write_hostfiles
from .key import KeyUnavailable, delete_key, read_key, write_key_file
from .launch_status import wait_for_launches
from .protocol import AuthError, Channel, ProtocolError, RemoteError, connect
from .server import NodeService, ProcessTable, exit_code, terminate_group

BACKOFF_START = 0.05
BACKOFF_MAX = 1.0
START_ACK_TIMEOUT = 10.0
LAUNCH_GRACE = 10.0  # for a launch still winding up when the command has ended
LOST_STOP_GRACE = 2.0  # seconds mpirun gets to stop after a node was lost
LISTEN_BACKLOG = 1024
METADATA_TIMEOUT = 2.0


class ConfigError(ValueError):
    """The environment does not describe a valid node of a multi-node job."""


class Terminated(Exception):
    """SIGTERM/SIGINT arrived before there was a command to pass it on to."""


@dataclass(frozen=True)
class Config:
    node_index: int
    main_index: int
    num_nodes: int
    key_uri: str
    port: int
    slots: int
    tasks: int
    join_timeout: float
    command: str
    local_address: str | None
    main_address: str | None
    sync_root: str | None
    heartbeat_timeout: float = 30.0
    # Read from key_uri at start (see ``key``); never from the environment.
    secret: bytes = field(default=b"", repr=False)

    @property
    def is_main(self) -> bool:
        return self.node_index == self.main_index

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Config:
        def integer(name: str, default: int | None = None, minimum: int = 0) -> int:
            raw = env.get(name, "")
            if raw == "":
                if default is None:
                    raise ConfigError(f"{name} is not set")
                return default
            try:
                value = int(raw)
            except ValueError:
                raise ConfigError(f"{name}={raw!r} is not an integer") from None
            if value < minimum:
                raise ConfigError(f"{name}={value} is below {minimum}")
            return value

        key_uri = env.get(ENV_KEY_URI, "")
        if not key_uri.startswith(("s3://", "file://")):
            raise ConfigError(
                f"{ENV_KEY_URI}={key_uri!r} is not an s3:// or file:// URI of the job's "
                "rendezvous key"
            )
        num_nodes = integer(ENV_NUM_NODES, 1, minimum=1)
        node_index = integer(ENV_NODE_INDEX, 0)
        main_index = integer(ENV_MAIN_NODE_INDEX, 0)
        if node_index >= num_nodes or main_index >= num_nodes:
            raise ConfigError(
                f"node index {node_index} / main node index {main_index} outside 0..{num_nodes - 1}"
            )
        slots = integer(ENV_SLOTS, 1, minimum=1)
        try:
            join_timeout = float(env.get(ENV_JOIN_TIMEOUT) or DEFAULT_JOIN_TIMEOUT)
        except ValueError:
            raise ConfigError(f"{ENV_JOIN_TIMEOUT} is not a number") from None
        command = env.get(ENV_COMMAND, "")
        main_address = env.get(ENV_MAIN_ADDRESS) or None
        try:
            heartbeat = heartbeat_timeout(env)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        if node_index == main_index and not command:
            raise ConfigError(f"{ENV_COMMAND} is not set on the main node")
        if node_index != main_index and not main_address:
            raise ConfigError(f"{ENV_MAIN_ADDRESS} is not set on a child node")
        return cls(
            node_index=node_index,
            main_index=main_index,
            num_nodes=num_nodes,
            key_uri=key_uri,
            port=integer(ENV_PORT, DEFAULT_PORT, minimum=1),
            slots=slots,
            tasks=integer(ENV_TASKS, slots * num_nodes, minimum=1),
            join_timeout=join_timeout,
            command=command,
            local_address=env.get(ENV_LOCAL_NODE_ADDRESS) or None,
            main_address=main_address,
            sync_root=env.get(ENV_SYNC_ROOT) or None,
            heartbeat_timeout=heartbeat,
        )


def listen(address: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((address, port))
    sock.listen(LISTEN_BACKLOG)
    return sock


def address_from_task_metadata(document: Mapping[str, Any]) -> str | None:
    """The first IPv4 address of the container's awsvpc interface in ECS task metadata v4."""
    for network in document.get("Networks") or []:
        for address in network.get("IPv4Addresses") or []:
            if address:
                return str(address)
    return None


def main_node_address(env: Mapping[str, str]) -> str | None:
    """The main node's private address, which Batch only tells the children.

    Multi-node jobs run in awsvpc mode: the container's own elastic network interface, whose
    address ECS's task metadata endpoint (``ECS_CONTAINER_METADATA_URI_V4``) reports.
    """
    uri = env.get("ECS_CONTAINER_METADATA_URI_V4")
    if not uri:
        return None
    try:
        # Never through a proxy: the endpoint is link-local, answered by the ECS agent.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(uri, timeout=METADATA_TIMEOUT) as response:
            return address_from_task_metadata(json.load(response))
    except (OSError, ValueError, AttributeError):
        return None


def bind_address(config: Config, env: Mapping[str, str]) -> str:
    """Where this node listens: its private address, not every interface."""
    return choose_bind_address(config, env)[0]


def choose_bind_address(config: Config, env: Mapping[str, str]) -> tuple[str, str]:
    """(address, where it came from): this node's private address, not every interface.

    Binding 0.0.0.0 would also answer on the container's other interfaces (in awsvpc mode,
    the bridge every task on the host shares to reach the ECS agent). The main node asks
    ECS's task metadata first (the emulation serves it too); a child's address is the one
    that routes to the main node. The emulation also names each node's loopback address,
    which loopback nodes need (they cannot tell their addresses apart by routing).
    """
    if config.main_address:  # a child
        if config.local_address:
            return config.local_address, "the emulation's node address"
        return own_address_towards(config.main_address), "the route to the main node"
    found = main_node_address(env)
    if found:
        return found, "the ECS task metadata"
    if config.local_address:
        return config.local_address, "the emulation's node address"
    return "0.0.0.0", "no task metadata: every interface"


def raise_open_file_limit() -> int:
    """Soft RLIMIT_NOFILE up to the hard limit (ECS's default soft limit is 1024)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            return target
        except (ValueError, OSError):
            pass
    return soft


def own_address_towards(peer: str) -> str:
    """The local address the kernel would use to reach peer (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect((peer, 9))
        return str(sock.getsockname()[0])


def write_shims(bin_dir: Path) -> None:
    """mpirun/mpiexec shims and the rsh agent script, all run by this node's Python.

    They start the tools through ``_bootstrap`` rather than ``python -m``: importing the
    plugin package would import Snakemake (half a second per call, and per remote launch).
    """
    bin_dir.mkdir(parents=True, exist_ok=True)
    python = shlex.quote(sys.executable)
    bootstrap = shlex.quote(str(Path(__file__).with_name("_bootstrap.py")))
    scripts = {name: f"launch {name}" for name in SHIM_NAMES}
    scripts[RSH_NAME] = "rsh"
    for name, tool in scripts.items():
        path = bin_dir / name
        tmp = path.with_name(f".{name}.tmp")
        tmp.write_text(
            "#!/bin/sh\n"
            f"# Written by the {TOOL_MARK} (snakemake-executor-plugin-awsbatch-mpi).\n"
            f'exec {python} {bootstrap} {tool} "$@"\n'
        )
        tmp.chmod(0o755)
        tmp.replace(path)


def shim_functions(bin_dir: Path) -> dict[str, str]:
    """Exported bash functions that route ``mpirun``/``mpiexec`` to the shims.

    PATH alone is not enough: Snakemake activates a rule's conda environment inside the
    command, which puts the environment's own ``mpirun`` first on PATH. Bash looks up
    functions before PATH, and every bash started by the command inherits them.
    """
    return {
        f"BASH_FUNC_{name}%%": f'() {{  {shlex.quote(str(bin_dir / name))} "$@"\n}}'
        for name in SHIM_NAMES
    }


# -- main node -----------------------------------------------------------------------------


@dataclass
class Member:
    info: NodeInfo
    channel: Channel
    heartbeat: Heartbeat | None = None


@dataclass(frozen=True)
class LostNode:
    """A node that stopped answering (or closed its connection) while the job ran."""

    node_index: int
    address: str
    detail: str  # "last heard from at ... UTC, 31.0 s earlier" / "its connection closed ..."

    def describe(self, main: bool = False) -> str:
        """``node 2 at 10.0.1.7 was lost (last heard from at ...)``; the executor parses it
        (batch/status.py), so keep the shape."""
        who = "main node" if main else "node"
        return f"{who} {self.node_index} at {self.address} was lost ({self.detail})"


def closed_detail() -> str:
    clock = time.strftime("%H:%M:%S", time.gmtime())
    return f"its control connection closed at {clock} UTC"


class Rendezvous:
    """Collects the children's joins (called from the service's connection threads)."""

    def __init__(self, config: Config, bin_dir: Path, started: float):
        self.config = config
        self.bin_dir = bin_dir
        self.started = started
        self.expected = set(range(config.num_nodes)) - {config.main_index}
        self.members: dict[int, Member] = {}
        self.main_address: str | None = None
        self.closed = False
        self.cond = threading.Condition()
        self.acks: set[int] = set()
        self.lost: LostNode | None = None
        # Called once, outside the lock, when the first node is lost (run_main stops the
        # command there).
        self.on_lost: Callable[[LostNode], None] | None = None

    def missing(self) -> list[int]:
        return sorted(self.expected - set(self.members))

    def handle_join(self, channel: Channel, message: dict[str, Any]) -> None:
        log = nodelog.get()
        try:
            info = NodeInfo(
                node_index=int(message["node_index"]),
                address=str(message["address"]),
                slots=int(message["slots"]),
                hostname=str(message.get("hostname", "")),
            )
        except (KeyError, TypeError, ValueError):
            channel.send_json({"op": "error", "message": "malformed join"})
            channel.close()
            return
        with self.cond:
            problem = None
            if self.closed:
                problem = "the job is no longer accepting nodes"
            elif info.node_index not in self.expected:
                problem = f"node index {info.node_index} is not a child of this job"
            elif info.node_index in self.members:
                problem = f"node {info.node_index} already joined"
            if problem:
                log.warning("refused join from %s: %s", channel.peer, problem)
                channel.send_json({"op": "error", "message": problem})
                channel.close()
                return
            elapsed = time.monotonic() - self.started
            self.members[info.node_index] = Member(info, channel)
            if self.main_address is None:
                self.main_address = str(channel.sock.getsockname()[0])
            channel.send_json(
                {
                    "op": "welcome",
                    "bin_dir": str(self.bin_dir),
                    "heartbeat_timeout": self.config.heartbeat_timeout,
                }
            )
            log.info(
                "node %d joined from %s (%s, %d slots) after %.2f s [%d/%d] %s",
                info.node_index,
                info.address,
                info.hostname,
                info.slots,
                elapsed,
                len(self.members) + 1,
                self.config.num_nodes,
                nodelog.stamp(),
            )
            member = self.members[info.node_index]
            self.cond.notify_all()
        member.heartbeat = Heartbeat(
            channel,
            self.config.heartbeat_timeout,
            lambda silence: self.node_lost(info, silence.describe()),
            name=f"heartbeat-node{info.node_index}",
        ).start()
        self._watch(member)

    def _watch(self, member: Member) -> None:
        """Read the control connection until it closes; a closed one means the node is gone.

        Every frame (a heartbeat or anything else) shows the node is alive.
        """
        heartbeat = member.heartbeat
        assert heartbeat is not None
        try:
            while True:
                message = member.channel.recv_json()
                heartbeat.heard()
                if message["op"] == "started":
                    with self.cond:
                        self.acks.add(member.info.node_index)
                        self.cond.notify_all()
        except (OSError, EOFError, ProtocolError, ValueError):
            pass
        heartbeat.stop()
        self.node_lost(member.info, closed_detail())

    def node_lost(self, info: NodeInfo, detail: str) -> None:
        """Record the first lost node and let run_main stop the job; later ones are logged."""
        with self.cond:
            if self.closed:
                return  # the job is over: connections close as expected
            lost = LostNode(info.node_index, info.address, detail)
            first = self.lost is None
            if first:
                self.lost = lost
            self.cond.notify_all()
        nodelog.get().error("%s %s", lost.describe(), nodelog.stamp())
        if first and self.on_lost is not None:
            self.on_lost(lost)

    def wait_all(self, timeout: float) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: not self.missing() or self.lost, timeout) and (
                self.lost is None
            )

    def wait_acks(self, timeout: float) -> list[int]:
        with self.cond:
            self.cond.wait_for(lambda: self.acks >= set(self.members) or self.lost, timeout)
            return sorted(set(self.members) - self.acks)

    def broadcast(self, message: dict[str, Any]) -> list[Member]:
        """Send every member `message` (a member that went away is skipped); return them."""
        with self.cond:
            members = list(self.members.values())
        for member in members:
            try:
                member.channel.send_json(message)
            except OSError:
                pass
        return members

    def finish(self, message: dict[str, Any]) -> None:
        """Send the children their last message and close; no more joins are accepted.

        Only the first call counts (an abort is followed by the ``finally`` clean-up's done).
        """
        with self.cond:
            if self.closed:
                return
            self.closed = True  # from here on, closed control connections are expected
        for member in self.broadcast(message):
            if member.heartbeat is not None:
                member.heartbeat.stop()
            member.channel.close()


def job_exit_code(command_code: int, launcher_codes: list[int]) -> int:
    """The command's exit code, or the last failed launcher's when the command failed.

    Snakemake exits 1 whatever went wrong; when mpirun failed, its code (often the failing
    rank's) says more. A command that succeeded despite a failed launch (``mpirun ... ||
    true``) chose to tolerate it, so it stays a success.
    """
    failed = [code for code in launcher_codes if code != 0]
    if command_code != 0 and failed:
        return failed[-1]
    return command_code


class Signals:
    """SIGTERM/SIGINT handling: pass the signal on to the command and the remote commands."""

    def __init__(self, processes: ProcessTable):
        self.processes = processes
        self.command: subprocess.Popen[bytes] | None = None
        self.received: int | None = None

    def install(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame: object) -> None:
        self.received = signum
        nodelog.get().warning("received %s; stopping", signal.Signals(signum).name)
        self.processes.signal_all(signal.SIGTERM)
        if self.command is None:
            raise Terminated()


class CommandStopper:
    """Stops the job command (and with it mpirun) when a node is lost, from any thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.proc: subprocess.Popen[bytes] | None = None
        self.stopping = False

    def started(self, proc: subprocess.Popen[bytes]) -> None:
        with self.lock:
            self.proc = proc
            stop = self.stopping
        if stop:
            self._terminate(proc)

    def stop(self, lost: LostNode) -> None:
        with self.lock:
            self.stopping = True
            proc = self.proc
        if proc is not None:
            nodelog.get().warning("stopping the job command and mpirun: %s", lost.describe())
            self._terminate(proc)

    @staticmethod
    def _terminate(proc: subprocess.Popen[bytes]) -> None:
        # A short grace: with a node gone, mpirun cannot wind its daemons down cleanly anyway,
        # and whatever is left of the command's session is killed after it.
        threading.Thread(target=terminate_group, args=(proc, LOST_STOP_GRACE), daemon=True).start()


def report_lost(lost: LostNode, what: str) -> int:
    """The main node's last line for a lost node (the executor reads it: batch/status.py)."""
    nodelog.get().error(
        "%s; %s and the other nodes were told to stop: exiting with %d",
        lost.describe(),
        what,
        EXIT_NODE_LOST,
    )
    return EXIT_NODE_LOST


def run_main(config: Config) -> int:
    log = nodelog.get()
    started = time.monotonic()
    processes = ProcessTable()
    processes.start_reaper()
    signals = Signals(processes)
    signals.install()
    workdir = Path(tempfile.mkdtemp(prefix="awsbatch-mpi-"))
    bin_dir = workdir / "bin"
    rendezvous = Rendezvous(config, bin_dir, started)
    stopper = CommandStopper()
    rendezvous.on_lost = stopper.stop
    service = NodeService(
        config.node_index,
        config.secret,
        processes,
        join_handler=rendezvous.handle_join,
    )
    try:
        write_shims(bin_dir)
        bind, source = choose_bind_address(config, os.environ)
        try:
            service.start(listen(bind, config.port))
        except OSError as exc:
            log.error("cannot listen on %s:%d: %s", bind, config.port, exc)
            return EXIT_CONFIG
        log.info(
            "main node of %d, listening on %s:%d (from %s); waiting up to %.0f s for %d "
            "children %s",
            config.num_nodes,
            bind,
            config.port,
            source,
            config.join_timeout,
            config.num_nodes - 1,
            nodelog.stamp(),
        )
        if not rendezvous.wait_all(config.join_timeout):
            if rendezvous.lost is not None:
                return report_lost(rendezvous.lost, "the job command never started")
            missing = rendezvous.missing()
            log.error(
                "nodes %s did not join within %.0f s (%s); failing the job",
                ", ".join(map(str, missing)),
                config.join_timeout,
                ENV_JOIN_TIMEOUT,
            )
            rendezvous.finish({"op": "abort", "reason": f"nodes {missing} did not join in time"})
            return EXIT_JOIN_TIMEOUT
        joined_at = time.time()
        log.info(
            "all %d nodes joined in %.2f s %s",
            config.num_nodes,
            time.monotonic() - started,
            nodelog.stamp(joined_at),
        )
        address = (bind if bind != "0.0.0.0" else None) or rendezvous.main_address or "127.0.0.1"
        me = NodeInfo(config.node_index, address, config.slots, socket.gethostname())
        nodes = ordered([me, *(m.info for m in rendezvous.members.values())], config.main_index)
        files = write_hostfiles(workdir, nodes)
        log.info(
            "hostfile %s: %s",
            files.openmpi,
            ", ".join(f"{n.address} slots={n.slots}" for n in nodes),
        )
        if config.num_nodes > 1:
            rendezvous.broadcast({"op": "start"})
            late = rendezvous.wait_acks(START_ACK_TIMEOUT)
            if rendezvous.lost is not None:
                return report_lost(rendezvous.lost, "the job command never started")
            if late:
                log.warning("nodes %s did not confirm the start", late)
        status_file = workdir / "status"
        env = dict(os.environ)
        env.update(
            {
                ENV_HOSTFILE: str(files.openmpi),
                ENV_HOSTFILE_MPICH: str(files.mpich),
                ENV_NODES: ",".join(n.address for n in nodes),
                ENV_DIR: str(workdir),
                ENV_BIN_DIR: str(bin_dir),
                ENV_STATUS_FILE: str(status_file),
                ENV_JOINED_AT: f"{joined_at:.3f}",
                ENV_PORT: str(config.port),
                ENV_TASKS: str(config.tasks),
                "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', os.defpath)}",
                **shim_functions(bin_dir),
            }
        )
        log.info("running the job command %s", nodelog.stamp())
        proc = processes.spawn(
            [command_shell(), "-c", config.command], env=env, start_new_session=True
        )
        signals.command = proc
        stopper.started(proc)
        command_code = exit_code(proc.wait())
        if rendezvous.lost is not None:
            return report_lost(
                rendezvous.lost, f"the job command was stopped (exit code {command_code})"
            )
        status = wait_for_launches(status_file, LAUNCH_GRACE if command_code else 0.0)
        if status.pending:
            log.warning("a launcher (pid %s) did not record its exit code", status.pending)
        code = job_exit_code(command_code, status.codes)
        if code != command_code:
            # The last line of the main node's log: the plugin shows it and its reason.
            log.error(
                "job command exited with %d after mpirun failed with %d%s: exiting with %d",
                command_code,
                code,
                f" ({status.reasons[-1]})" if status.reasons else "",
                code,
            )
        else:
            log.info("job command exited with %d %s", command_code, nodelog.stamp())
        return code
    except Terminated:
        return 128 + (signals.received or signal.SIGTERM)
    finally:
        if signals.received is None:
            forget_key(config)
        if rendezvous.lost is not None:
            rendezvous.finish({"op": "abort", "reason": rendezvous.lost.describe()})
        rendezvous.finish({"op": "done"})
        service.stop()
        processes.stop_all(grace=2.0)
        shutil.rmtree(workdir, ignore_errors=True)


# -- children ------------------------------------------------------------------------------


def join_main(config: Config, address: str, deadline: float) -> tuple[Channel, dict[str, Any]]:
    """Connect to the main node and join, retrying while it is not up yet.

    Backoff starts at 50 ms and doubles up to 1 s: the main node usually starts first, so
    the first attempt or two succeed, and nothing waits a fixed time.
    """
    log = nodelog.get()
    assert config.main_address is not None
    delay = BACKOFF_START
    attempts = 0
    last_error: Exception | None = None
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(
                f"main node {config.main_address}:{config.port} did not answer within "
                f"{config.join_timeout:.0f} s ({attempts} attempts; last error: {last_error})"
            )
        attempts += 1
        try:
            channel = connect(config.main_address, config.port, config.secret, min(remaining, 10))
        except (OSError, EOFError, ProtocolError) as exc:
            last_error = exc
            time.sleep(max(0.0, min(delay, deadline - time.monotonic())))
            delay = min(delay * 2, BACKOFF_MAX)
            continue
        try:
            channel.send_json(
                {
                    "op": "join",
                    "node_index": config.node_index,
                    "address": address,
                    "slots": config.slots,
                    "hostname": socket.gethostname(),
                }
            )
            reply = channel.recv_json()
        except BaseException:
            channel.close()
            raise
        if reply["op"] == "error":
            channel.close()
            raise RemoteError(str(reply.get("message")))
        if reply["op"] != "welcome":
            channel.close()
            raise ProtocolError(f"unexpected reply {reply['op']!r} to join")
        channel.sock.settimeout(None)
        log.info(
            "joined main node %s:%d after %d attempt(s) %s",
            config.main_address,
            config.port,
            attempts,
            nodelog.stamp(),
        )
        return channel, reply


def run_child(config: Config) -> int:
    log = nodelog.get()
    started = time.monotonic()
    deadline = started + config.join_timeout
    processes = ProcessTable()
    processes.start_reaper()
    signals = Signals(processes)
    signals.install()
    assert config.main_address is not None
    address = bind_address(config, os.environ)
    service = NodeService(config.node_index, config.secret, processes, config.sync_root)
    created_bin: Path | None = None
    try:
        try:
            service.start(listen(address, config.port))
        except OSError as exc:
            log.error("cannot listen on %s:%d: %s", address, config.port, exc)
            return EXIT_CONFIG
        try:
            channel, welcome = join_main(config, address, deadline)
        except AuthError as exc:
            log.error("%s: this node's rendezvous key differs from the main node's", exc)
            return 1
        except (TimeoutError, RemoteError, ProtocolError, OSError, EOFError) as exc:
            log.error("could not join the main node: %s", exc)
            return 1
        # The rsh agent must exist at the same path here: Open MPI's daemons launch further
        # daemons with it (tree spawn). On a shared filesystem the main node made it already.
        bin_dir = Path(str(welcome["bin_dir"]))
        if not bin_dir.exists():
            created = bin_dir if bin_dir.parent.exists() else bin_dir.parent
            write_shims(bin_dir)
            created_bin = created
        # The main node's timeout rules (it is the same setting on every node, but a child
        # must not give up on a main node that beats more slowly than it expects).
        timeout = float(welcome.get("heartbeat_timeout") or config.heartbeat_timeout)
        lost: list[Silence] = []

        def main_lost(silence: Silence) -> None:
            lost.append(silence)
            channel.close()  # wakes the reader below

        heartbeat = Heartbeat(channel, timeout, main_lost, name="heartbeat-main").start()
        try:
            while True:
                message = channel.recv_json()
                heartbeat.heard()
                op = message["op"]
                if op == "start":
                    channel.send_json({"op": "started"})
                elif op == "done":
                    log.info("main node is done; exiting")
                    return 0
                elif op == "abort":
                    log.error("main node aborted the job: %s", message.get("reason"))
                    return 1
        except (OSError, EOFError, ProtocolError, ValueError) as exc:
            if lost:
                main = LostNode(config.main_index, config.main_address, lost[0].describe())
                log.error(
                    "%s; stopping this node's processes: exiting with %d",
                    main.describe(main=True),
                    EXIT_NODE_LOST,
                )
                return EXIT_NODE_LOST
            log.info("main node closed the control connection (%s); exiting", exc or "EOF")
            return 0
        finally:
            heartbeat.stop()
    except Terminated:
        return 128 + (signals.received or signal.SIGTERM)
    finally:
        service.stop()
        processes.stop_all(grace=2.0)
        if created_bin is not None:
            shutil.rmtree(created_bin, ignore_errors=True)


def forget_key(config: Config) -> None:
    """Delete the key object once the main node is done with the job.

    Only when it ends by itself: Batch retries an attempt only for infrastructure failures
    (a lost host, which does not get here), and a retried attempt must still find the key.
    After a signal (TerminateJob, timeout) the submitter deletes it when it sees the job end.
    """
    problem = delete_key(config.key_uri)
    if problem:
        nodelog.get().warning(
            "could not delete the rendezvous key %s (%s); the submitter deletes it when it "
            "sees the job end",
            config.key_uri,
            problem,
        )


def main() -> int:
    log = nodelog.setup()
    try:
        config = Config.from_env(os.environ)
    except ConfigError as exc:
        log.error("invalid configuration: %s", exc)
        return EXIT_CONFIG
    try:
        config = replace(config, secret=read_key(config.key_uri))
    except KeyUnavailable as exc:
        log.error("%s", exc)
        return EXIT_CONFIG
    raise_open_file_limit()
    key_file = write_key_file(config.secret)
    os.environ[ENV_KEY_FILE] = key_file  # for the launcher shim and rsh, via the command
    try:
        if config.is_main:
            return run_main(config)
        return run_child(config)
    finally:
        try:
            os.unlink(key_file)
        except OSError:
            pass
