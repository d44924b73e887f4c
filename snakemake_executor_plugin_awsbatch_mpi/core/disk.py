"""Disk on EC2: which rules need more disk than the root volume of their queue's instances.

On EC2, Batch gives a job no disk of its own: every job on an instance shares the instance's
root volume (30 GiB with the ECS-optimized AMI unless the compute environment's launch
template maps a larger one), where Docker keeps the images and every container's files.
`disk_mb` is honoured on Fargate only (`ephemeralStorage`). A rule that needs more than the
volume fails late with "No space left on device", or breaks the jobs beside it, so `plan`,
`doctor` and the executor's whole-DAG check warn once per rule (pure: the volumes come in
`QueueInfo.disks`, see `root_volume.py`), and the job itself checks before the rule runs
(`disk_guard.py`).

Only a disk the user gave counts (in the rule, with `--set-resources`): Snakemake gives every
job of a cloud run a default `disk_mb` (50000 MB, or twice the input size), which says nothing
about what the job needs.
"""

from __future__ import annotations

import math
from dataclasses import replace

from .request import JobRequest
from .root_volume import RootVolume
from .sizes import disk_mib_of

# The names of the disk resource a user can write (Snakemake standardises them all to "disk").
DISK_NAMES = frozenset({"disk", "disk_mb", "disk_mib"})


def declared_disk(request: JobRequest) -> tuple[str, object, float] | None:
    """(name, value, MiB) of the disk the user gave the job (`JobRequest.declared`), None
    when only Snakemake's default applies."""
    given = DISK_NAMES & request.declared
    if not given:
        return None
    # Name the unit the user gave (disk="50 GB" is disk_mb to Snakemake).
    preferred = {"disk_mib" if name == "disk_mib" else "disk_mb" for name in given}
    written = {**request.written, **{name: None for name in preferred}}
    return disk_mib_of(replace(request, written=written))


def disk_warning(
    rule: str, disk: tuple[str, object, float], queue: str, volumes: tuple[RootVolume, ...]
) -> str | None:
    """The one warning for a rule whose disk exceeds the root volume of its queue's instances.

    Jobs may land in any compute environment of the queue, so the smallest volume counts.
    """
    name, value, mib = disk
    small = [volume for volume in volumes if volume.gib * 1024 < mib]
    if not small:
        return None
    volume = min(small, key=lambda v: v.gib)
    need = math.ceil(mib / 1024)
    return (
        f"Rule '{rule}' asks for {name}={value} ({need} GiB), but on EC2 a job gets no disk "
        "of its own: all jobs on an instance share its root volume, and the instances of "
        f"queue '{queue}' have {volume.gib} GiB ({volume.source}). Its jobs would fail with "
        "\"No space left on device\" (each stops at its start when less is free). Give the "
        f"compute environment a launch template whose root volume is larger than {need} GiB "
        "(the OS and the container images use part of it; `awsbatch-mpi setup "
        "--root-volume-gib N` does this), send the rule to a queue with larger volumes "
        f"(resources: awsbatch_queue=...), or lower {name}."
    )
