"""Shared file systems of a job definition, as the local emulation provides them.

On AWS an EFS file system, or a host directory every instance mounts (FSx for Lustre), is
the same directory in every container of every node. The emulation keeps one host directory
per file system below the runtime's volumes root, so every container (every node) that
mounts it sees the same files:

- docker runtime: a ``-v <host dir>:<container path>`` per mount point;
- process runtime: a process cannot mount anything at ``/efs``, so each container gets a
  private directory (``AWSBATCH_LOCAL_FS_ROOT``) holding a symbolic link per container path
  to the shared host directory. Commands the plugin writes put that variable (unset on AWS)
  in front of container paths; resolved with ``cd -P``, the path is the same on every node.
"""

from __future__ import annotations

import os
import shlex
import sys
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.anyimage import RUNTIME_MOUNT, RUNTIME_VERSION
from ..mpi import ENV_LOCAL_FS_ROOT

__all__ = [
    "ENV_LOCAL_FS_ROOT", "Mount", "docker_volume_args", "gpus_of", "link_mounts", "mounts_of",
]


@dataclass(frozen=True)
class Mount:
    """One mount point of a container: which shared directory, where, how."""

    # Relative path below the volumes root naming the file system (e.g. "efs/fs-0123abcd").
    key: str
    container_path: str
    read_only: bool = False


def _volume_key(volume: Mapping[str, Any]) -> str | None:
    efs = volume.get("efsVolumeConfiguration")
    if efs:
        key = f"efs/{efs['fileSystemId']}"
        access_point = (efs.get("authorizationConfig") or {}).get("accessPointId")
        if access_point:
            return f"{key}/access-points/{access_point}"
        root = str(efs.get("rootDirectory") or "/").strip("/")
        return f"{key}/{root}" if root else key
    host = volume.get("host") or {}
    if host.get("sourcePath"):
        return "host/" + str(host["sourcePath"]).strip("/")
    return None  # a Docker-managed scratch volume: not shared, not emulated


def mounts_of(properties: Mapping[str, Any]) -> tuple[Mount, ...]:
    """The mount points of container properties whose volumes are shared file systems."""
    keys = {v.get("name"): _volume_key(v) for v in properties.get("volumes") or []}
    mounts = []
    for point in properties.get("mountPoints") or []:
        key = keys.get(point.get("sourceVolume"))
        if key and ".." not in key.split("/") and point.get("containerPath"):
            mounts.append(
                Mount(key, str(point["containerPath"]), bool(point.get("readOnly", False)))
            )
    return tuple(mounts)


def gpus_of(properties: Mapping[str, Any]) -> int:
    """The GPU requirement of (merged) container properties: what the runtime fakes."""
    by_type = {r["type"]: r["value"] for r in properties.get("resourceRequirements") or []}
    return int(by_type.get("GPU", 0))


def host_directory(volumes_root: Path, mount: Mount) -> Path:
    """The shared directory of a mount (created); the same for every container."""
    directory = volumes_root / mount.key
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def link_mounts(fs_root: Path, mounts: Iterable[Mount], volumes_root: Path) -> None:
    """Process runtime: `<fs_root>/<container path>` → the shared directory, per mount.

    The plugin's runtime (rules in any image) is the exception: the process runtime runs
    every "image" with this Python, so the runtime's mount gets a stand-in whose
    `bin/python` is this Python (`runtime_stand_in`).
    """
    for mount in mounts:
        link = fs_root / mount.container_path.strip("/")
        link.parent.mkdir(parents=True, exist_ok=True)
        if mount.container_path == RUNTIME_MOUNT:
            target = runtime_stand_in(volumes_root)
        else:
            target = host_directory(volumes_root, mount)
        link.symlink_to(target, target_is_directory=True)


def runtime_stand_in(volumes_root: Path) -> Path:
    """A directory shaped like the runtime's file system (`<version>/bin/python`) whose
    Python is the one the process runtime runs every job with."""
    root = volumes_root / "process-runtime"
    python = root / RUNTIME_VERSION / "bin" / "python"
    if not python.exists():
        python.parent.mkdir(parents=True, exist_ok=True)
        # A script, not a symbolic link: a virtual environment's Python finds its packages
        # from the path it was started by. Written whole, then renamed (containers start
        # concurrently).
        partial = python.with_name(f".python.{os.getpid()}.{threading.get_ident()}")
        partial.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} \"$@\"\n")
        partial.chmod(0o755)
        partial.replace(python)
    return root


def docker_volume_args(mounts: Iterable[Mount], volumes_root: Path) -> list[str]:
    """Docker runtime: one ``--volume`` per mount (read-only ones with ``:ro``)."""
    args: list[str] = []
    for mount in mounts:
        spec = f"{host_directory(volumes_root, mount)}:{mount.container_path}"
        args += ["--volume", spec + (":ro" if mount.read_only else "")]
    return args
