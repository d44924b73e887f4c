"""`doctor`'s judgement of the runtime's file system (pure): is this plugin version's runtime
where the queues will read it? (Rules in any image, issue 22.)

The doctor cannot mount EFS; it reads the file system (state, mount targets) and the tag
`awsbatch-mpi runtime install` leaves after its job copied the runtime there. A host
directory (filled by the instances' launch template) cannot be seen from the API at all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..core.anyimage import RUNTIME_VERSION
from ..core.spec import Volume, VolumeKind
from .outcomes import CheckResult, failed, passed, warned
from .runtime_install import RUNTIME_TAG

CHECK = "runtime"


def check_runtime(
    volume: Volume,
    file_system: Mapping[str, Any] | None,
    mount_targets: Sequence[Mapping[str, Any]] | None,
    error: str | None = None,
) -> CheckResult:
    """One line: the runtime of this plugin version is installed on `volume`, or what to do."""
    install = (
        f"awsbatch-mpi runtime install --file-system efs:{volume.source} --job-queue QUEUE"
    )
    if volume.kind is VolumeKind.HOST:
        return warned(
            CHECK,
            f"The runtime is read from the instances' directory {volume.source}, which the "
            f"doctor cannot see: make sure the launch template puts runtime {RUNTIME_VERSION} "
            f"at {volume.source}/{RUNTIME_VERSION} on every instance of the queues.",
        )
    if file_system is None:
        return failed(
            CHECK,
            f"Could not read the runtime's EFS file system {volume.source} ({error or 'absent'}). "
            "Check --awsbatch-mpi-runtime-volume and the region; the doctor needs "
            "elasticfilesystem:DescribeFileSystems and DescribeMountTargets.",
        )
    state = str(file_system.get("LifeCycleState", "available"))
    if state != "available":
        return failed(
            CHECK,
            f"The runtime's EFS file system {volume.source} is {state}, not available: jobs "
            "cannot mount it. Wait for it, or use another one.",
        )
    tags = {str(t.get("Key")): str(t.get("Value")) for t in file_system.get("Tags") or []}
    if RUNTIME_TAG not in tags:
        others = sorted(k for k in tags if k.startswith("awsbatch-mpi-runtime-"))
        held = f" (it holds {', '.join(others)})" if others else ""
        return failed(
            CHECK,
            f"Runtime {RUNTIME_VERSION} of this plugin is not installed on {volume.source}"
            f"{held}: rules whose image has no Snakemake would fail. Install it with `{install}`.",
        )
    if mount_targets is not None and not mount_targets:
        return failed(
            CHECK,
            f"Runtime {RUNTIME_VERSION} is installed on {volume.source}, but the file system "
            "has no mount target: jobs cannot mount it. Create one in each subnet of the "
            "queues' compute environments (NFS port 2049 open from their security groups).",
        )
    return passed(
        CHECK,
        f"Runtime {RUNTIME_VERSION} is installed on {volume.source} "
        f"({tags[RUNTIME_TAG]}); jobs mount it read-only.",
    )
