"""Shared file systems mounted in a job (EFS and host volumes) and the shared working
directory of a multi-node job on one of them.

(`local/volumes.py` is the local emulation's side: how these mounts are made on this machine.)
"""

from __future__ import annotations

import re
import shlex

from ..mpi import ENV_LOCAL_FS_ROOT
from .multinode import mpi_layout_of
from .request import JobRequest, TranslationSettings
from .spec import Platform, QueueInfo, ResourceError, Volume, VolumeKind
from .values import given

EFS_ID = re.compile(r"^fs-[0-9a-f]{8,40}$")

EFS_ACCESS_POINT = re.compile(r"^fsap-[0-9a-f]{8,40}$")

VOLUME_FORMS = (
    "'efs:FS_ID[:ACCESS_POINT_ID]:/CONTAINER/PATH[:ro]' (e.g. 'efs:fs-0123abcd:/efs') or "
    "'host:/HOST/PATH:/CONTAINER/PATH[:ro]' (e.g. 'host:/fsx:/fsx')"
)


def _container_path_problem(path: str) -> str | None:
    if not path.startswith("/") or path.rstrip("/") == "":
        return f"container path '{path}' must be an absolute directory other than /"
    if ".." in path.split("/"):
        return f"container path '{path}' must not contain '..'"
    return None


def parse_volume(item: str) -> Volume:
    """One volume in the syntax of `VOLUME_FORMS`; ValueError says what is wrong."""
    parts = item.split(":")
    read_only = len(parts) > 1 and parts[-1] == "ro"
    if read_only:
        parts = parts[:-1]
    kind, rest = parts[0].lower(), parts[1:]
    if kind == VolumeKind.EFS and len(rest) in (2, 3):
        fs_id, path = rest[0], rest[-1]
        access_point = rest[1] if len(rest) == 3 else None
        if not EFS_ID.match(fs_id):
            raise ValueError(f"'{item}': '{fs_id}' is not an EFS file system id (fs-...)")
        if access_point is not None and not EFS_ACCESS_POINT.match(access_point):
            raise ValueError(f"'{item}': '{access_point}' is not an EFS access point id (fsap-...)")
        volume = Volume(VolumeKind.EFS, fs_id, path.rstrip("/"), access_point, read_only)
    elif kind == VolumeKind.HOST and len(rest) == 2:
        source, path = rest
        if not source.startswith("/"):
            raise ValueError(f"'{item}': host path '{source}' must be absolute")
        volume = Volume(VolumeKind.HOST, source, path.rstrip("/"), None, read_only)
    else:
        raise ValueError(f"'{item}' is not a volume")
    problem = _container_path_problem(path)
    if problem:
        raise ValueError(f"'{item}': {problem}")
    return volume


def parse_volumes(text: str) -> tuple[Volume, ...]:
    """Volumes separated by spaces or commas; each container path at most once."""
    volumes = tuple(parse_volume(item) for item in text.replace(",", " ").split())
    seen: set[str] = set()
    for volume in volumes:
        if volume.container_path in seen:
            raise ValueError(f"container path '{volume.container_path}' is mounted twice")
        seen.add(volume.container_path)
    return volumes


def volumes_of(
    request: JobRequest, settings: TranslationSettings, queue: QueueInfo
) -> tuple[Volume, ...]:
    """--awsbatch-mpi-volumes plus the rule's `awsbatch_volumes` (which win on the same
    container path), in container-path order so the job definition's hash is stable."""
    res, rule = request.resources, request.rule
    by_path = {volume.container_path: volume for volume in settings.volumes or ()}
    name = "awsbatch_volumes"
    if given(res, name):
        try:
            by_path.update({v.container_path: v for v in parse_volumes(str(res[name]))})
        except ValueError as err:
            raise ResourceError(
                rule, name, res[name], f"{err}; write each volume as {VOLUME_FORMS}."
            ) from None
    volumes = tuple(by_path[path] for path in sorted(by_path))
    hosts = [str(v) for v in volumes if v.kind is VolumeKind.HOST]
    if hosts and queue.platform is Platform.FARGATE:
        raise ResourceError(
            rule,
            name if given(res, name) else "--awsbatch-mpi-volumes",
            " ".join(hosts),
            f"queue '{queue.name}' runs on Fargate, which has no host file systems; use EFS "
            "('efs:FS_ID:/PATH') or route the rule to an EC2 queue with "
            "awsbatch_queue='<queue>'.",
        )
    return volumes


def shared_workdir_of(request: JobRequest, volumes: tuple[Volume, ...]) -> str | None:
    """`awsbatch_workdir`: a directory on one of the job's shared volumes (MPI rules only),
    below which each job runs in a directory of its own that every node sees."""
    res, rule, name = request.resources, request.rule, "awsbatch_workdir"
    if not given(res, name):
        return None
    path = str(res[name]).rstrip("/")
    writable = [v.container_path for v in volumes if not v.read_only]
    if not any(path == p or path.startswith(p + "/") for p in writable) or ".." in path:
        shown = ", ".join(writable) or "none"
        raise ResourceError(
            rule,
            name,
            res[name],
            f"must be a directory on a writable shared volume of the job (mounted: {shown}); "
            "mount one with awsbatch_volumes='efs:FS_ID:/efs' or --awsbatch-mpi-volumes.",
        )
    if mpi_layout_of(request) is None:
        raise ResourceError(
            rule,
            name,
            res[name],
            "applies only to multi-node MPI rules (resources mpi and tasks); remove it.",
        )
    return path


def in_shared_workdir(command: str, workdir: str) -> str:
    """`command` run in `<workdir>/<job id>-<attempt>`, removed afterwards; `cd -P` makes the
    path the same on every node, so the node agent sees the main node's directory and copies
    nothing.
    The local emulation puts container paths below ENV_LOCAL_FS_ROOT (unset on AWS)."""
    root = f'"${{{ENV_LOCAL_FS_ROOT}:-}}"'
    # One directory per attempt: a retried attempt never sees what a lost one left behind.
    job = '"${AWS_BATCH_JOB_ID%%#*}-${AWS_BATCH_JOB_ATTEMPT:-1}"'
    directory = f"{root}{shlex.quote(workdir)}/{job}"
    return (
        f"d={directory} && mkdir -p \"$d\" && cd -P \"$d\" || exit 1; "
        "trap 'cd / && rm -rf \"$d\"' EXIT; " + command
    )
