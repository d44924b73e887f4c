"""The ``--runtime docker`` runner: each Batch container is a real Docker container.

It drives the ``docker`` command line (any engine speaking API 1.41 or later) rather than a
client library, so nothing beyond the CLI is needed. What a job sees, as on Batch:

* the job definition's image (never pulled: ``--pull never``; a missing image fails the job
  with ``CannotPullContainerError``, as Batch reports an image it cannot pull), its command
  unchanged, and the image's own user and working directory;
* the effective vCPUs and memory as ``--cpus`` and ``--memory`` (swap included, so a job
  that exceeds its memory is killed by the kernel: ``OOMKilled`` in ``docker inspect``,
  reported as Batch's ``OutOfMemoryError``); the attempt timeout is enforced here;
* the same environment as the local process runtime (``runner.container_environment``),
  passed by name (``-e NAME``) so no value appears on a command line.

Networking: the emulation listens on 127.0.0.1 only, which a container on a bridge network
cannot reach. Every network this runner creates therefore gets a small TCP forwarder on its
gateway address (the host side of the bridge) to the emulation, and containers receive
``AWS_ENDPOINT_URL=http://<gateway>:<forwarder port>``. Container jobs share one network;
each multi-node job gets a network of its own. The main node starts first (as on Batch);
the other nodes are told its address.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from ._common import EmulationError
from .network import RefusedPort, node_environment
from .runner import (
    JobContext,
    LogLine,
    StartRequest,
    container_environment,
    record_timeout,
)
from .volumes import docker_volume_args

logger = logging.getLogger(__name__)

DOCKER = "docker"
LABEL = "awsbatch-mpi.emulation"
SHARED_NETWORK = ""
CLI_TIMEOUT = 60
EXIT_DOCKER_ERROR = 125


def docker_problem(docker: str = DOCKER) -> str | None:
    """Why Docker cannot be used here (a complete sentence), or None when an engine answers."""
    if shutil.which(docker) is None:
        return (
            "The docker command is not installed: install Docker (Debian: apt-get install "
            "docker.io) or use the default process runtime (--runtime process)."
        )
    try:
        proc = subprocess.run(
            [docker, "version", "--format", "{{.Server.APIVersion}}"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except subprocess.TimeoutExpired:
        return "The Docker engine did not answer within 20 s: check that dockerd is running."
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        return (
            f"No Docker engine answers ({detail[-1] if detail else 'no output'}): start dockerd "
            "(or Docker Desktop), or use the default process runtime (--runtime process)."
        )
    return None


def docker_run_args(
    request: StartRequest,
    container_name: str,
    network: str,
    label: str,
    max_cpus: float,
    volumes: Sequence[str] = (),
) -> list[str]:
    """The ``docker run`` arguments for one Batch container (pure; environment by name)."""
    args = ["run", "--detach", "--pull", "never", "--name", container_name, *volumes]
    args += ["--label", f"{LABEL}={label}", "--network", network]
    if request.vcpus:
        args += ["--cpus", f"{min(request.vcpus, max_cpus):g}"]
    if request.memory_mib:
        # --memory-swap equal to --memory: no swap, the limit is the limit, as on Batch.
        args += ["--memory", f"{request.memory_mib}m", "--memory-swap", f"{request.memory_mib}m"]
    for name in sorted(request.environment):
        args += ["--env", name]
    args.append(request.image)
    args += request.command
    return args


def start_error(stderr: str, image: str) -> str:
    """Batch's container reason for a container that could not start (pure)."""
    message = " ".join(stderr.strip().split())
    if "No such image" in message or "Unable to find image" in message:
        return (
            f"CannotPullContainerError: the image {image} is not in the local Docker engine "
            "(the emulation never pulls): build it (make images) or docker pull it."
        )
    return f"CannotStartContainerError: {message}"


class TcpForwarder:
    """Accepts connections on ``host`` (a bridge gateway) and relays them to the emulation."""

    def __init__(self, host: str, target: Callable[[], tuple[str, int]]):
        self.target = target
        self._server = socket.create_server((host, 0))
        self.host, self.port = self._server.getsockname()[:2]
        self._closed = False
        threading.Thread(target=self._accept, name=f"forward-{host}", daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target(), timeout=10)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(source, sink), daemon=True).start()

    def close(self) -> None:
        self._closed = True
        self._server.close()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()


@dataclass
class _Network:
    name: str
    subnet: str
    gateway: str
    forwarder: TcpForwarder
    # AWS APIs a node of this network may not reach point here (see local/network.py).
    refused: RefusedPort
    containers: set[str] = field(default_factory=set)
    main_address: str = ""


class DockerContainer:
    """One running Docker container: output reader and exit watcher threads."""

    def __init__(self, runner: DockerRunner, request: StartRequest, cid: str, address: str | None):
        self._runner = runner
        self.id = cid
        self.name = request.name
        self.context = request.context
        self.job = request.job
        self.address = address
        self.exit_code: int | None = None
        self.start_error: str | None = None
        self.oom_killed = False
        self.timed_out = False
        self._lines: list[LogLine] = []
        self._lines_lock = threading.Lock()
        self._exited = threading.Event()
        self._removed = False

    @classmethod
    def failed(cls, runner: DockerRunner, request: StartRequest, error: str) -> DockerContainer:
        container = cls(runner, request, "", None)
        container.start_error = error
        container._append("stderr", error)
        container._exited.set()
        return container

    def _watch(self) -> None:
        logs = subprocess.Popen(
            [self._runner.docker, "logs", "--follow", self.id],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        readers = [
            threading.Thread(target=self._read, args=(name, pipe), daemon=True)
            for name, pipe in (("stdout", logs.stdout), ("stderr", logs.stderr))
        ]
        for reader in readers:
            reader.start()
        waiter = subprocess.Popen(
            [self._runner.docker, "wait", self.id],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = self.context.deadline if self.context else None
        while True:
            timeout = None if deadline is None else max(0.0, deadline - time.time())
            try:
                waiter.wait(timeout=timeout)
                break
            except subprocess.TimeoutExpired:
                deadline = None
                self.timed_out = True
                record_timeout(self.job, self.name)
                self.kill()
        state = self._runner.inspect_state(self.id)
        self.exit_code = state.get("ExitCode")
        self.oom_killed = bool(state.get("OOMKilled"))
        try:
            logs.wait(timeout=10)
        except subprocess.TimeoutExpired:
            logs.kill()
        for reader in readers:
            reader.join(timeout=5)
        self._exited.set()

    def _read(self, stream: str, pipe: IO[bytes]) -> None:
        for raw in iter(pipe.readline, b""):
            self._append(stream, raw.decode("utf-8", errors="replace").rstrip("\r\n"))
        pipe.close()

    def _append(self, stream: str, text: str) -> None:
        with self._lines_lock:
            self._lines.append(LogLine(time.time(), stream, text))

    # -- the Container surface ------------------------------------------------------------

    def log_lines(self, start: int = 0) -> list[LogLine]:
        with self._lines_lock:
            return self._lines[start:]

    def has_exited(self) -> bool:
        return self._exited.is_set()

    def wait(self, timeout: float | None = None) -> int | None:
        if not self._exited.wait(timeout):
            raise TimeoutError(f"container {self.name} still running after {timeout}s")
        return self.exit_code

    def kill(self, signal_name: str | int | None = None) -> None:
        """``docker stop`` (SIGTERM, SIGKILL after the grace period), or the given signal."""
        if not self.id or self.has_exited():
            return
        if signal_name is None:
            grace = max(1, round(self._runner.stop_grace_seconds))
            args = ["stop", "--time", str(grace), self.id]
        else:
            args = ["kill", "--signal", str(signal_name), self.id]
        threading.Thread(target=self._runner.cli, args=(args,), daemon=True).start()

    def remove(self) -> None:
        if self._removed:
            return
        self._removed = True
        if self.id:
            self._runner.cli(["rm", "--force", self.id])
            self._exited.wait(10)
        self._runner._forget(self)


class DockerRunner:
    """The Docker :class:`~.runner.Runner`; owns its containers, networks and forwarders."""

    def __init__(
        self,
        endpoint_url: str,
        region: str,
        stop_grace_seconds: float = 2.0,
        docker: str = DOCKER,
    ):
        problem = docker_problem(docker)
        if problem is not None:
            raise EmulationError(f"Cannot use the docker runtime: {problem}")
        self.endpoint_url = endpoint_url
        self.region = region
        self.stop_grace_seconds = stop_grace_seconds
        self.docker = docker
        self.label = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.max_cpus = float(os.cpu_count() or 1)
        # Shared file systems (EFS, host paths) of every job: one directory each.
        self.volumes_root = Path(tempfile.gettempdir()) / f"awsbatch-mpi-volumes-{self.label}"
        self._lock = threading.Lock()
        self._networks: dict[str, _Network] = {}
        self._containers: dict[str, tuple[DockerContainer, str]] = {}
        self._closed = False

    # -- docker CLI --------------------------------------------------------------------------

    def cli(
        self, args: list[str], env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.docker, *args],
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT,
            env=env,
            stdin=subprocess.DEVNULL,
        )

    def inspect_state(self, cid: str) -> dict:
        proc = self.cli(["inspect", "--format", "{{json .State}}", cid])
        return json.loads(proc.stdout) if proc.returncode == 0 and proc.stdout.strip() else {}

    # -- networks ----------------------------------------------------------------------------

    def _network(self, key: str) -> _Network:
        with self._lock:
            network = self._networks.get(key)
            if network is not None:
                return network
            name = f"awsbatch-mpi-{self.label}-{key[:12] or 'jobs'}"
            created = self.cli(["network", "create", "--label", f"{LABEL}={self.label}", name])
            if created.returncode != 0:
                raise EmulationError(
                    f"Docker could not create the network {name}: {created.stderr.strip()}"
                )
            proc = self.cli(
                ["network", "inspect", "--format", "{{json .IPAM.Config}}", name],
            )
            config = json.loads(proc.stdout)[0]
            network = _Network(
                name=name,
                subnet=config["Subnet"],
                gateway=config["Gateway"],
                # The emulation's current address: it changes when a shared one stops.
                forwarder=TcpForwarder(config["Gateway"], lambda: _host_port(self.endpoint_url)),
                refused=RefusedPort(config["Gateway"]),
            )
            self._networks[key] = network
            return network

    def _drop_network(self, key: str) -> None:
        with self._lock:
            network = self._networks.get(key)
            if network is None or network.containers or key == SHARED_NETWORK:
                return
            del self._networks[key]
        network.forwarder.close()
        network.refused.close()
        self.cli(["network", "rm", network.name])

    # -- the Runner surface --------------------------------------------------------------------

    def start(self, request: StartRequest) -> DockerContainer:
        if self._closed:
            raise RuntimeError("the docker runner has been shut down")
        context: JobContext | None = request.context
        key = context.job_id if context is not None and context.is_node else SHARED_NETWORK
        network = self._network(key)
        is_main = context is not None and context.node_index == context.main_node_index
        endpoint = f"http://{network.gateway}:{network.forwarder.port}"
        env = container_environment(
            {}, request.environment, context, network.main_address, self.region, endpoint
        )
        if request.network is not None and not request.network.unrestricted:
            env = node_environment(env, request.network, endpoint, network.refused.url)
        named = dataclasses.replace(request, environment=env)
        container_name = f"{request.name}-{uuid.uuid4().hex[:6]}"[:120]
        volumes = docker_volume_args(request.mounts, self.volumes_root) if request.mounts else []
        args = docker_run_args(
            named, container_name, network.name, self.label, self.max_cpus, volumes
        )
        proc = self.cli(args, env={**os.environ, **env})
        if proc.returncode != 0:
            error = start_error(proc.stderr, request.image)
            logger.warning("Container %s did not start: %s", request.name, error)
            self.cli(["rm", "--force", container_name])
            self._drop_network(key)
            return DockerContainer.failed(self, request, error)
        cid = proc.stdout.strip()
        inspected = self.cli(
            ["inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", cid]
        )
        address = inspected.stdout.strip() or None
        if is_main and key != SHARED_NETWORK:
            network.main_address = address or ""
        container = DockerContainer(self, request, cid, address)
        with self._lock:
            network.containers.add(cid)
            self._containers[cid] = (container, key)
        threading.Thread(target=container._watch, name=f"docker-{cid[:12]}", daemon=True).start()
        logger.debug("Started container %s (%s) at %s", request.name, cid[:12], address)
        return container

    def _forget(self, container: DockerContainer) -> None:
        with self._lock:
            entry = self._containers.pop(container.id, None)
            if entry is None:
                return
            network = self._networks.get(entry[1])
            if network is not None:
                network.containers.discard(container.id)
        self._drop_network(entry[1])

    def live_count(self) -> int:
        proc = self.cli(["ps", "--quiet", "--filter", f"label={LABEL}={self.label}"])
        return len(proc.stdout.split()) if proc.returncode == 0 else 0

    def shutdown(self, grace: float | None = None) -> None:
        """Remove every container and network of this runner; idempotent."""
        self._closed = True
        with self._lock:
            containers = [entry[0] for entry in self._containers.values()]
        for container in containers:
            container.remove()
        leftover = self.cli(["ps", "--all", "--quiet", "--filter", f"label={LABEL}={self.label}"])
        if leftover.stdout.split():
            self.cli(["rm", "--force", *leftover.stdout.split()])
        with self._lock:
            networks = list(self._networks.values())
            self._networks.clear()
        for network in networks:
            network.forwarder.close()
            network.refused.close()
            self.cli(["network", "rm", network.name])
        shutil.rmtree(self.volumes_root, ignore_errors=True)


def _host_port(url: str) -> tuple[str, int]:
    rest = url.split("://", 1)[-1].rstrip("/")
    host, _, port = rest.rpartition(":")
    return host, int(port)
