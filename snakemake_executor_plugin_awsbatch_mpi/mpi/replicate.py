"""Copy the main node's working directory to every child before a launch.

A marker file with a random token, written on the main node and looked for on each child,
tells whether the child sees this very directory (a shared filesystem): then nothing is
copied. Otherwise the tree is streamed to the child's agent (``sync``) over the job's
authenticated channel (``protocol``), to the same absolute path, all children in parallel.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .hostfile import NodeInfo
from .protocol import connect, request
from .sync import TreeStats, send_tree

SYNC_WORKERS = 16


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
