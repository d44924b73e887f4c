"""Value objects passed between the pure translation core and the AWS shell.

Everything here is frozen: a `JobSpec` is computed once per Snakemake job, before any AWS call,
and then only read. Keeping the shape (what goes into a job definition) apart from the size
(what goes into `containerOverrides`) is what lets one job definition serve thousands of jobs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from .capacity import ComputeLimit
from .root_volume import RootVolume


class Platform(StrEnum):
    """Where a queue's compute environments run containers."""

    EC2 = "EC2"
    FARGATE = "FARGATE"


class ResourceError(ValueError):
    """A rule asks for something AWS Batch cannot give; raised before any AWS call."""

    def __init__(self, rule: str, resource: str, value: object, allowed: str) -> None:
        self.rule = rule
        self.resource = resource
        self.value = value
        self.allowed = allowed
        super().__init__(
            f"Rule '{rule}': resource {resource}={value!r} cannot be run on AWS Batch: {allowed}"
        )


@dataclass(frozen=True)
class QueueInfo:
    """What the plugin needs to know about a job queue (read once per run)."""

    name: str
    platform: Platform = Platform.EC2
    # True when every compute environment of the queue uses Spot capacity.
    spot_only: bool = False
    # True when any compute environment of the queue uses Spot capacity.
    has_spot: bool = False
    state: str = "ENABLED"
    status: str = "VALID"
    # The queue has a fair-share scheduling policy (every job needs a share identifier);
    # None when not known (offline plans), then not checked.
    fair_share: bool | None = None
    # What each compute environment can ever place; empty when not known (no check).
    limits: tuple[ComputeLimit, ...] = ()
    # The root volume of each EC2 compute environment's instances (all jobs of an instance
    # share it); empty when not known (no check).
    disks: tuple[RootVolume, ...] = ()


class VolumeKind(StrEnum):
    """Where a shared file system comes from."""

    # An Amazon EFS file system, mounted by ECS in the container (Fargate too).
    EFS = "efs"
    # A directory of the instance (e.g. FSx for Lustre mounted by the launch template).
    HOST = "host"


@dataclass(frozen=True)
class Volume:
    """A file system mounted at `container_path` in every container of a job (every node)."""

    kind: VolumeKind
    # The EFS file system id (fs-...) or the host directory.
    source: str
    container_path: str
    access_point: str | None = None
    read_only: bool = False

    def __str__(self) -> str:
        """The setting/resource syntax that produced this volume."""
        parts = [self.kind.value, self.source]
        if self.access_point:
            parts.append(self.access_point)
        parts.append(self.container_path)
        if self.read_only:
            parts.append("ro")
        return ":".join(parts)


@dataclass(frozen=True)
class JobShape:
    """The part of a job that goes into a (reusable, content-hashed) job definition."""

    image: str
    platform: Platform = Platform.EC2
    privileged: bool = False
    shm_mib: int | None = None
    log_group: str | None = None
    job_role_arn: str | None = None
    execution_role_arn: str | None = None
    # Fargate only: ephemeral storage cannot be overridden at submit time.
    ephemeral_storage_gib: int | None = None
    assign_public_ip: bool = False
    # Multi-node parallel jobs get a `multinode` definition with an open node range ("0:"),
    # so one definition serves every node count.
    multinode: bool = False
    # Batch `secrets` (name, Secrets Manager or SSM Parameter Store ARN): injected by ECS at
    # start through the execution role, never shown by DescribeJobs.
    secrets: tuple[tuple[str, str], ...] = ()
    # Shared file systems (EFS, host paths such as FSx for Lustre), in container-path order.
    volumes: tuple[Volume, ...] = ()
    # Elastic Fabric Adapter devices (/dev/infiniband/uverbs0..N-1) passed into the container.
    efa_devices: int = 0


@dataclass(frozen=True)
class JobSize:
    """Per-job sizes; they go into `containerOverrides.resourceRequirements`."""

    vcpus: float
    memory_mib: int
    gpus: int = 0


@dataclass(frozen=True)
class MpiLayout:
    """How an MPI rule's tasks are spread over the nodes of one multi-node parallel job."""

    nodes: int
    tasks: int
    tasks_per_node: int
    cpus_per_task: int
    # Ranks each node offers in the hostfile: tasks per node, or GPUs per node for GPU jobs.
    slots_per_node: int
    instance_type: str | None = None


@dataclass(frozen=True)
class JobSpec:
    """Everything needed to submit one Snakemake job (or group job) to Batch."""

    rule: str
    name: str
    queue: str
    shape: JobShape
    size: JobSize
    command: tuple[str, ...]
    environment: tuple[tuple[str, str], ...] = ()
    timeout_seconds: int | None = None
    job_definition: str | None = None
    priority: int | None = None
    share: str | None = None
    tags: tuple[tuple[str, str], ...] = ()
    mpi: MpiLayout | None = None
    # Attempts Batch itself makes for infrastructure failures (Spot reclaims, hosts that
    # fail to start the task); application failures are left to Snakemake's --retries.
    batch_attempts: int = 1
    # Where the image came from (core/anyimage.ImageSource) and whether the self-contained
    # runtime is mounted to run Snakemake in it (shown by `plan`).
    image_source: str = "default"
    runtime: bool = False
    warnings: tuple[str, ...] = field(default=(), compare=False)
