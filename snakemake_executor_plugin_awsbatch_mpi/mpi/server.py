"""What every node agent serves on its port: joins (main node), remote commands, directory copies.

Connections are authenticated by the ``gate`` (one thread for all handshakes); each
authenticated one gets a thread, and its first message names the request:

- ``join`` (main node only): a child reports itself; the connection then stays open as the
  child's control connection (``start``/``done``/``abort`` go down it).
- ``exec``: run a command with ``/bin/bash -c`` like sshd would, in the requested working
  directory if it exists, with stdin from /dev/null, streaming stdout/stderr back and
  ending with its exit code. The
  command runs in its own process group, killed when the connection drops (the rsh agent
  was killed) or the node agent shuts down.
- ``sync``: receive a working directory (``sync``), unless the requested path already is the
  sender's directory (shared filesystem, detected by a marker file the sender wrote).
- ``ping``: liveness and identity check.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import command_shell, nodelog
from .gate import Gate
from .protocol import (
    KIND_STDERR,
    KIND_STDOUT,
    AuthError,
    Channel,
    ProtocolError,
)
from .sync import receive_tree

KILL_GRACE = 5.0
PIPE_DRAIN_TIMEOUT = 5.0

JoinHandler = Callable[[Channel, dict[str, Any]], None]


def exit_code(returncode: int) -> int:
    """Shell convention: killed by signal N -> 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


class ProcessTable:
    """The processes this agent started, so they can be killed and told apart from orphans.

    When the agent is PID 1 of its container (``exec python`` in the container command) it
    inherits every orphaned process and must reap them, but must not reap its own children
    before ``subprocess`` does (their exit codes would be lost).
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.processes: list[subprocess.Popen[bytes]] = []

    def spawn(self, *args: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
        with self.lock:
            proc: subprocess.Popen[bytes] = subprocess.Popen(*args, **kwargs)
            self.processes = [p for p in self.processes if p.returncode is None]
            self.processes.append(proc)
            return proc

    def signal_all(self, signum: int) -> None:
        with self.lock:
            running = [p for p in self.processes if p.poll() is None]
        for proc in running:
            kill_group(proc, signum)

    def stop_all(self, grace: float) -> None:
        """Terminate every process started here and whatever is left of their sessions.

        Also for processes that already exited: their ranks may not have (see
        ``terminate_group``).
        """
        with self.lock:
            processes = list(self.processes)
        for proc in processes:
            if proc.poll() is None:
                terminate_group(proc, grace)
            kill_session(proc.pid, signal.SIGKILL)

    def reap_orphans(self) -> None:
        """Reap exited processes that are not ours (only needed when we are PID 1)."""
        while True:
            with self.lock:
                try:
                    info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
                except ChildProcessError:
                    return
                if info is None:
                    return
                if any(p.pid == info.si_pid and p.returncode is None for p in self.processes):
                    return  # ours: subprocess will collect it
                try:
                    os.waitpid(info.si_pid, os.WNOHANG)
                except ChildProcessError:
                    return

    def start_reaper(self) -> None:
        if os.getpid() != 1:
            return

        def loop() -> None:
            while True:
                time.sleep(1.0)
                self.reap_orphans()

        threading.Thread(target=loop, name="reaper", daemon=True).start()


def kill_group(proc: subprocess.Popen[bytes], signum: int) -> None:
    try:
        os.killpg(proc.pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def session_members(sid: int) -> list[int]:
    """Live processes of session sid, from /proc (empty where there is no /proc).

    Every process this agent starts leads a session of its own (``start_new_session``), and
    what it starts stays in that session even in another process group: mpirun and Open
    MPI's daemons put each rank (and each remote-launch agent) in a group of its own.
    """
    members = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for name in entries:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", encoding="ascii", errors="replace") as handle:
                stat = handle.read()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp session ..."; comm may hold spaces and parentheses.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) >= 4 and fields[0] != "Z" and int(fields[3]) == sid:
            members.append(int(name))
    return members


def kill_session(sid: int, signum: int) -> None:
    for pid in session_members(sid):
        try:
            os.kill(pid, signum)
        except (ProcessLookupError, PermissionError):
            pass


def terminate_group(proc: subprocess.Popen[bytes], grace: float = KILL_GRACE) -> None:
    """SIGTERM the process group, SIGKILL it if the leader is still there after grace.

    Then SIGKILL whatever is left of the leader's session: ranks and launch agents that
    mpirun or a daemon moved to process groups of their own would otherwise outlive it
    (and keep the node's log pipes open).
    """
    kill_group(proc, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        kill_group(proc, signal.SIGKILL)
    # Leftovers in the group (the leader exited but its children did not).
    kill_group(proc, signal.SIGKILL)
    kill_session(proc.pid, signal.SIGKILL)


@dataclass
class NodeService:
    """The accept loop and request handlers of one node agent."""

    node_index: int
    secret: bytes
    processes: ProcessTable
    sync_root: str | None = None
    join_handler: JoinHandler | None = None
    stopping: threading.Event = field(default_factory=threading.Event)
    listener: socket.socket | None = None

    def map_path(self, path: str) -> Path:
        """Where an absolute path of the main node lives here (differs only in tests)."""
        if self.sync_root:
            return Path(self.sync_root) / path.lstrip("/")
        return Path(path)

    def start(self, listener: socket.socket) -> None:
        """Serve on listener; unauthenticated peers never get past the ``gate``."""
        self.listener = listener
        gate = Gate(listener, self.secret, self._handle, self.stopping)
        threading.Thread(target=gate.run, name="gate", daemon=True).start()

    def stop(self) -> None:
        self.stopping.set()
        if self.listener is not None:
            try:
                self.listener.close()
            except OSError:
                pass

    def _handle(self, channel: Channel) -> None:
        """One authenticated connection: its first message names the request."""
        log = nodelog.get()
        sock = channel.sock
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        except OSError:
            pass
        try:
            try:
                message = channel.recv_json()
            except AuthError:
                log.warning(
                    "rejected a connection from %s: a message failed authentication "
                    "(a replayed or altered message)",
                    channel.peer,
                )
                channel.reject()
                return
            channel.sock.settimeout(None)
            op = message["op"]
            if op == "join" and self.join_handler is not None:
                self.join_handler(channel, message)  # keeps the channel
                return
            if op == "exec":
                self._exec(channel, message)
            elif op == "sync":
                self._sync(channel, message)
            elif op == "ping":
                channel.send_json({"op": "pong", "node_index": self.node_index})
            else:
                channel.send_json({"op": "error", "message": f"unsupported request {op!r}"})
        except (OSError, EOFError, ProtocolError, ValueError, KeyError) as exc:
            log.warning("request from %s failed: %s", channel.peer, exc)
        channel.close()

    # -- exec ------------------------------------------------------------------------------

    def _exec(self, channel: Channel, message: dict[str, Any]) -> None:
        log = nodelog.get()
        command = str(message["command"])
        env = dict(os.environ)
        env.update({str(k): str(v) for k, v in (message.get("env") or {}).items()})
        cwd: Path | None = None
        if message.get("cwd"):
            candidate = self.map_path(str(message["cwd"]))
            cwd = candidate if candidate.is_dir() else None
        log.debug("exec from %s in %s: %s", channel.peer, cwd, command)
        try:
            proc = self.processes.spawn(
                [command_shell(), "-c", command],
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            channel.send_json({"op": "error", "message": f"cannot run command: {exc}"})
            return
        finished = threading.Event()

        def pump(fd: int, kind: bytes) -> None:
            try:
                while chunk := os.read(fd, 65536):
                    channel.send(kind, chunk)
            except OSError:
                pass

        def watch_client() -> None:
            """A dropped connection means the rsh agent died: kill the command's group."""
            try:
                while True:
                    channel.recv()
            except (OSError, EOFError, ProtocolError, ValueError):
                pass
            if not finished.is_set():
                log.debug("rsh client %s went away; killing its command", channel.peer)
                terminate_group(proc)

        assert proc.stdout is not None and proc.stderr is not None
        pumps = [
            threading.Thread(target=pump, args=(proc.stdout.fileno(), KIND_STDOUT), daemon=True),
            threading.Thread(target=pump, args=(proc.stderr.fileno(), KIND_STDERR), daemon=True),
        ]
        for thread in pumps:
            thread.start()
        threading.Thread(target=watch_client, daemon=True).start()
        code = exit_code(proc.wait())
        deadline = time.monotonic() + PIPE_DRAIN_TIMEOUT
        for thread in pumps:
            thread.join(max(0.0, deadline - time.monotonic()))
        finished.set()
        try:
            channel.send_json({"op": "exit", "code": code})
        except OSError:
            pass
        kill_group(proc, signal.SIGKILL)  # whatever the command left behind in its group
        kill_session(proc.pid, signal.SIGKILL)  # and in groups of their own (ranks)

    # -- sync ------------------------------------------------------------------------------

    def _sync(self, channel: Channel, message: dict[str, Any]) -> None:
        log = nodelog.get()
        path = str(message["path"])
        marker = str(message["marker"])
        if not os.path.isabs(path) or "/" in marker or marker in ("", ".", ".."):
            raise ValueError("bad sync request")
        target = self.map_path(path)
        try:
            shared = (target / marker).read_text() == str(message["token"])
        except OSError:
            shared = False
        if shared:
            channel.send_json({"op": "sync", "shared": True, "target": str(target)})
            log.info("working directory %s is shared with the main node: nothing to copy", path)
            return
        channel.send_json({"op": "sync", "shared": False, "target": str(target)})
        started = time.monotonic()
        stats = receive_tree(channel, target)
        elapsed = time.monotonic() - started
        channel.send_json(
            {"op": "synced", "files": stats.files, "bytes": stats.bytes, "seconds": elapsed}
        )
        log.info(
            "received working directory %s (%s) in %.2f s; files that ranks write here stay "
            "on this node and are lost when the job ends",
            target,
            stats.describe(),
            elapsed,
        )
