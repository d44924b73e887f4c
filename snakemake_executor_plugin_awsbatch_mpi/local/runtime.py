"""The default runner of the emulation: every "container" is a local process group.

The runner contract (:class:`~.runner.Runner`) and the environment every container gets
(:func:`~.runner.container_environment`) are in :mod:`.runner`; the Docker runner is in
:mod:`.docker_runner`. Here, every "container" is a local process group in a private
temporary directory, with the host's Python environment. No Docker needed, starts in
milliseconds, but the image is not used and limits are not enforced.

The local process runtime:

* runs each container as one process started with ``start_new_session=True`` so that its
  whole process group can be signalled; when the leader exits, the rest of its group is
  killed too, as when PID 1 of a container exits;
* runs the command with the host's Python environment (the directory of
  ``sys.executable`` first on ``PATH``); a warning says so once per image;
* captures stdout and stderr line by line with the time each line arrived;
* enforces attempt timeouts by killing the process group at the deadline;
* gives the nodes of a multi-node job their own loopback addresses (127.A.B.x).
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import IO

from ..mpi.server import exit_code as shell_exit_code
from ._common import NODE_ADDRESS_ENV
from .network import RefusedPort, node_environment
from .runner import (
    LogLine,
    StartRequest,
    container_environment,
    record_timeout,
)
from .volumes import ENV_LOCAL_FS_ROOT, link_mounts

GPU_DEVICES_ENV = "NVIDIA_VISIBLE_DEVICES"

logger = logging.getLogger(__name__)



EXIT_CANNOT_EXECUTE = 126
EXIT_NOT_FOUND = 127


class AddressAllocator:
    """Gives each multi-node job its own block of loopback addresses.

    Node ``i`` of a job gets ``127.A.B.(2+i)``. Blocks are handed out per job id from a
    counter (A in 10..249), so concurrent multi-node jobs never share an address and a node
    agent can bind to its address without clashing with another job's nodes.
    """

    FIRST_OCTET = 10
    OCTET_SPAN = 240
    MAX_NODES = 252

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._blocks: dict[str, int] = {}
        self._counter = 0

    def address(self, job_id: str, node_index: int) -> str:
        if not 0 <= node_index < self.MAX_NODES:
            raise ValueError(f"node index {node_index} outside 0..{self.MAX_NODES - 1}")
        with self._lock:
            block = self._blocks.get(job_id)
            if block is None:
                block = self._counter % (self.OCTET_SPAN * 256)
                self._counter += 1
                self._blocks[job_id] = block
        return f"127.{self.FIRST_OCTET + block // 256}.{block % 256}.{2 + node_index}"


def _live_process_groups() -> dict[int, list[int]] | None:
    """Live (non-zombie) processes by process group, read from /proc; None if no /proc.

    ``killpg(pgid, 0)`` would also count zombies, and orphaned zombies can linger for ever
    when PID 1 does not reap (common in containers), which would make every killed container
    look alive.
    """
    proc = Path("/proc")
    if not proc.is_dir():
        return None
    groups: dict[int, list[int]] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ..."; comm may contain spaces and parentheses.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) >= 3 and fields[0] != "Z":
            groups.setdefault(int(fields[2]), []).append(int(entry.name))
    return groups


def _group_members(pgid: int) -> list[int]:
    """Live processes of one process group (see :func:`_live_process_groups`)."""
    groups = _live_process_groups()
    if groups is not None:
        return groups.get(pgid, [])
    try:  # not Linux: fall back to the signal probe
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return []
    return [pgid]


class LocalContainer:
    """One "container": a process group in a private working directory."""

    def __init__(
        self,
        runtime: LocalContainerRuntime,
        request: StartRequest,
        environment: dict[str, str],
        address: str,
        root: Path,
    ):
        self._runtime = runtime
        self.id = uuid.uuid4().hex
        self.short_id = self.id[:12]
        self.name = request.name
        self.image = request.image
        self.command = request.command
        self.environment = environment
        self.address: str | None = address
        self.context = request.context
        self.job = request.job
        self.oom_killed = False  # a process group has no memory limit
        self.root = root
        self.workdir = root / "work"
        self.status = "created"
        self.exit_code: int | None = None
        self.start_error: str | None = None
        self.timed_out = False
        self.killed = False
        self.pid: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._lines: list[LogLine] = []
        self._lines_lock = threading.Lock()
        self._readers: list[threading.Thread] = []
        self._exited = threading.Event()
        self._removed = False

    # -- lifecycle -------------------------------------------------------------------------

    def _start(self) -> None:
        try:
            if not self.command:
                raise _StartFailure(EXIT_NOT_FOUND, "no command given (the image is not used)")
            self._proc = subprocess.Popen(
                self.command,
                cwd=self.workdir,
                env=self.environment,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                close_fds=True,
            )
        except _StartFailure as err:
            self._fail_start(err.exit_code, err.message)
            return
        except FileNotFoundError:
            self._fail_start(
                EXIT_NOT_FOUND, f'exec: "{self.command[0]}": executable file not found in $PATH'
            )
            return
        except PermissionError:
            self._fail_start(EXIT_CANNOT_EXECUTE, f'exec: "{self.command[0]}": permission denied')
            return
        except OSError as err:
            self._fail_start(EXIT_CANNOT_EXECUTE, f'exec: "{self.command[0]}": {err}')
            return
        self.pid = self._proc.pid
        self.status = "running"
        assert self._proc.stdout is not None and self._proc.stderr is not None
        for stream_name, pipe in (("stdout", self._proc.stdout), ("stderr", self._proc.stderr)):
            reader = threading.Thread(
                target=self._read_pipe,
                args=(stream_name, pipe),
                name=f"local-container-{self.short_id}-{stream_name}",
                daemon=True,
            )
            reader.start()
            self._readers.append(reader)
        threading.Thread(
            target=self._monitor, name=f"local-container-{self.short_id}-monitor", daemon=True
        ).start()

    def _fail_start(self, exit_code: int, message: str) -> None:
        """A container whose command cannot start exits at once, like Docker's OCI error."""
        self.start_error = f"CannotStartContainerError: {message}"
        self._append("stderr", message)
        self.exit_code = exit_code
        self.status = "exited"
        self._exited.set()

    def _read_pipe(self, stream_name: str, pipe: IO[bytes]) -> None:
        try:
            for raw in iter(pipe.readline, b""):
                self._append(stream_name, raw.decode("utf-8", errors="replace").rstrip("\r\n"))
        except (OSError, ValueError):
            pass
        finally:
            try:
                pipe.close()
            except OSError:
                pass

    def _append(self, stream_name: str, text: str) -> None:
        with self._lines_lock:
            self._lines.append(LogLine(time.time(), stream_name, text))

    def _monitor(self) -> None:
        """Wait for the leader, enforce the deadline, then clean up the rest of the group."""
        proc = self._proc
        assert proc is not None
        deadline = self.context.deadline if self.context else None
        while True:
            timeout = None if deadline is None else max(0.0, deadline - time.time())
            try:
                returncode = proc.wait(timeout=timeout)
                break
            except subprocess.TimeoutExpired:
                deadline = None
                self.timed_out = True
                record_timeout(self.job, self.name)
                self._terminate_group(self._runtime.stop_grace_seconds)
        # The leader is gone: like a container whose PID 1 exited, nothing else survives.
        self._signal_group(signal.SIGKILL)
        for reader in self._readers:
            reader.join(timeout=5)
        self.exit_code = shell_exit_code(returncode)
        self.status = "exited"
        self._exited.set()

    def _signal_group(self, signum: int) -> None:
        if self.pid is None:
            return
        try:
            os.killpg(self.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass

    def _terminate_group(self, grace: float) -> None:
        """SIGTERM the group now and SIGKILL whatever is left after ``grace`` seconds."""
        self.killed = True
        self._signal_group(signal.SIGTERM)
        if grace <= 0:
            self._signal_group(signal.SIGKILL)
            return

        def _finish() -> None:
            if _group_members(self.pid or -1):
                self._signal_group(signal.SIGKILL)

        timer = threading.Timer(grace, _finish)
        timer.daemon = True
        timer.start()

    # -- the Container surface ------------------------------------------------------------

    def wait(self, timeout: float | None = None) -> int | None:
        """The exit code once the container has exited; TimeoutError if it is still running."""
        if not self._exited.wait(timeout):
            raise TimeoutError(f"container {self.name} still running after {timeout}s")
        return self.exit_code

    def kill(self, signal_name: str | int | None = None) -> None:
        """Stop the container: SIGTERM the group, SIGKILL after the runtime's grace period.

        An explicit signal is sent as is (``kill("SIGKILL")`` kills at once).
        """
        if self.status != "running":
            return
        if signal_name is None:
            self._terminate_group(self._runtime.stop_grace_seconds)
            return
        signum = (
            signal_name
            if isinstance(signal_name, int)
            else signal.Signals[
                signal_name if str(signal_name).startswith("SIG") else f"SIG{signal_name}"
            ].value
        )
        self.killed = True
        self._signal_group(signum)

    def remove(self) -> None:
        """Kill what is left and delete the private working directory."""
        if self.status == "running":
            self.kill("SIGKILL")
            self._exited.wait(5)
        if not self._removed:
            self._removed = True
            shutil.rmtree(self.root, ignore_errors=True)
            self._runtime._forget(self)

    def log_lines(self, start: int = 0) -> list[LogLine]:
        """Captured lines from index ``start`` on (lets a caller forward logs incrementally)."""
        with self._lines_lock:
            return self._lines[start:]

    def has_exited(self) -> bool:
        return self._exited.is_set()


class _StartFailure(Exception):
    def __init__(self, exit_code: int, message: str):
        super().__init__(message)
        self.exit_code = exit_code
        self.message = message


class LocalContainerRuntime:
    """The default :class:`Runner`: containers as local process groups; owns all of them."""

    def __init__(
        self,
        workdir: Path,
        endpoint_url: str,
        region: str,
        stop_grace_seconds: float = 2.0,
    ):
        self.workdir = Path(workdir)
        self.endpoint_url = endpoint_url
        self.region = region
        self.stop_grace_seconds = stop_grace_seconds
        self.addresses = AddressAllocator()
        self._lock = threading.Lock()
        self._containers: dict[str, LocalContainer] = {}
        self._pgids: set[int] = set()
        self._warned_images: set[str] = set()
        self._refused_port: RefusedPort | None = None
        self._closed = False

    def all_containers(self) -> list[LocalContainer]:
        with self._lock:
            return list(self._containers.values())

    def live_count(self) -> int:
        """How many containers ever started here still have a live process.

        Counts process groups, not registered containers, so a container that was removed
        while something of it survived still counts: this is what proves "no orphans".
        """
        with self._lock:
            pgids = set(self._pgids)
        groups = _live_process_groups()
        if groups is None:
            alive = {pgid for pgid in pgids if _group_members(pgid)}
        else:
            alive = pgids & groups.keys()
        with self._lock:
            self._pgids -= pgids - alive
        return len(alive)

    def node_address(self, job_id: str, node_index: int) -> str:
        return self.addresses.address(job_id, node_index)

    def start(self, request: StartRequest) -> LocalContainer:
        if self._closed:
            raise RuntimeError("the local container runtime has been shut down")
        self._warn_image(request.image)
        context = request.context
        if context is not None and context.is_node:
            assert context.node_index is not None
            address = self.node_address(context.job_id, context.node_index)
            main_address = self.node_address(context.job_id, context.main_node_index or 0)
        else:
            address = main_address = "127.0.0.1"
        self.workdir.mkdir(parents=True, exist_ok=True)
        # <root>/work is the working directory and HOME, <root>/tmp is TMPDIR.
        root = Path(tempfile.mkdtemp(prefix="container-", dir=self.workdir))
        (root / "work").mkdir()
        (root / "tmp").mkdir()
        env = container_environment(
            self.host_environment(root),
            request.environment,
            context,
            main_address,
            self.region,
            self.endpoint_url,
        )
        if context is not None and context.is_node:
            # On loopback every node sees 127.0.0.1 as its own address: tell it which it is.
            env[NODE_ADDRESS_ENV] = address
        if request.network is not None and not request.network.unrestricted:
            env = node_environment(env, request.network, self.endpoint_url, self._refused().url)
        if request.gpus:
            # What the ECS agent tells a container about its GPUs (there are none here).
            env.setdefault(GPU_DEVICES_ENV, ",".join(str(i) for i in range(request.gpus)))
        if request.mounts:
            link_mounts(root / "fs", request.mounts, self.workdir / "volumes")
            env[ENV_LOCAL_FS_ROOT] = str(root / "fs")
        container = LocalContainer(self, request, env, address, root)
        with self._lock:
            self._containers[container.id] = container
        container._start()
        if container.pid is not None:
            with self._lock:
                self._pgids.add(container.pid)
        logger.debug(
            "Started local container %s (pid %s) for %s: %s",
            container.name,
            container.pid,
            context.container_job_id if context else "no job",
            shlex.join(container.command),
        )
        return container

    def _refused(self) -> RefusedPort:
        """The endpoint of AWS APIs a node may not reach: every connection is refused."""
        with self._lock:
            if self._refused_port is None:
                self._refused_port = RefusedPort("127.0.0.1")
            return self._refused_port

    def host_environment(self, root: Path) -> dict[str, str]:
        """The clean base of a local process: the host's Python first on PATH, private dirs."""
        host_python_dir = str(Path(sys.executable).parent)
        path_parts = [host_python_dir]
        for part in os.environ.get("PATH", os.defpath).split(os.pathsep):
            if part and part not in path_parts:
                path_parts.append(part)
        lang = os.environ.get("LANG") or "C.UTF-8"
        env: dict[str, str] = {
            "PATH": os.pathsep.join(path_parts),
            "HOME": str(root / "work"),
            "TMPDIR": str(root / "tmp"),
            "LANG": lang,
            "LC_ALL": os.environ.get("LC_ALL") or lang,
        }
        venv = os.environ.get("VIRTUAL_ENV") or (
            sys.prefix if sys.prefix != sys.base_prefix else None
        )
        if venv:
            env["VIRTUAL_ENV"] = venv
        return env

    def _warn_image(self, image: str) -> None:
        with self._lock:
            if image in self._warned_images:
                return
            self._warned_images.add(image)
        logger.warning(
            "Image %s is not pulled: the local emulation runs the container command with the "
            "host's Python environment (%s).",
            image,
            sys.executable,
        )

    def _forget(self, container: LocalContainer) -> None:
        with self._lock:
            self._containers.pop(container.id, None)

    def shutdown(self, grace: float | None = None) -> None:
        """Kill every container's process group and delete their directories; idempotent."""
        self._closed = True
        grace = self.stop_grace_seconds if grace is None else grace
        containers = self.all_containers()
        for container in containers:
            if container.status == "running":
                container._terminate_group(grace)
        deadline = time.time() + grace + 5
        for container in containers:
            container._exited.wait(max(0.0, deadline - time.time()))
            if container.pid is not None and _group_members(container.pid):
                container._signal_group(signal.SIGKILL)
        for container in containers:
            container.remove()
        if self._refused_port is not None:
            self._refused_port.close()
            self._refused_port = None


