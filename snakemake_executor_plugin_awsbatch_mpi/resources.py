"""Translate a Snakemake job's resources into a Batch `JobSpec` (pure, no AWS calls).

All validation lives here so that a bad rule stops the run before anything is submitted, with an
error naming the rule, the resource, the value and what is allowed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field

from .mpi import ENV_KEY_URI
from .spec import JobShape, JobSize, JobSpec, MpiLayout, Platform, QueueInfo, ResourceError

# Snakemake's own test workflows ask for mem="5MB"; a Python process running Snakemake needs
# far more. Requests below the floor are raised to it (never rejected, never shrunk).
MEMORY_FLOOR_MIB = 256
# Used when a job has no memory resource at all (Snakemake without --default-resources).
DEFAULT_MEMORY_MIB = 2048
MIN_TIMEOUT_SECONDS = 60
MAX_PRIORITY = 9999
MAX_NODES = 1000
# The container entry point of every node of a multi-node job (see mpi/__main__.py).
MPI_AGENT_COMMAND = ("/bin/bash", "-c", "exec python -m snakemake_executor_plugin_awsbatch_mpi.mpi")
DEFAULT_JOIN_TIMEOUT_SECONDS = 600
# Attempts Batch makes by itself for infrastructure failures (--awsbatch-mpi-batch-attempts).
DEFAULT_BATCH_ATTEMPTS = 3
FARGATE_MIN_EPHEMERAL_GIB = 21
FARGATE_MAX_EPHEMERAL_GIB = 200

# Fargate accepts only these vCPU values, each with its own memory steps (MiB).
FARGATE_SIZES: dict[float, tuple[int, int, int]] = {
    0.25: (512, 2048, 512),
    0.5: (1024, 4096, 1024),
    1.0: (2048, 8192, 1024),
    2.0: (4096, 16384, 1024),
    4.0: (8192, 30720, 1024),
    8.0: (16384, 61440, 4096),
    16.0: (32768, 122880, 8192),
}


@dataclass(frozen=True)
class JobRequest:
    """The parts of a Snakemake job the translation needs, decoupled from Snakemake's classes."""

    rule: str
    threads: int
    resources: Mapping[str, object]
    wildcards: Mapping[str, str] = field(default_factory=dict)
    is_group: bool = False


@dataclass(frozen=True)
class TranslationSettings:
    """The executor settings that influence translation."""

    job_queue: str
    default_image: str
    gpu_job_queue: str | None = None
    multinode_job_queue: str | None = None
    gpu_queues: Mapping[str, str] = field(default_factory=dict)
    job_role_arn: str | None = None
    execution_role_arn: str | None = None
    log_group: str | None = None
    default_memory_mib: int = DEFAULT_MEMORY_MIB
    tags: Mapping[str, str] = field(default_factory=dict)
    assign_public_ip: bool = False
    mpi_join_timeout: int = DEFAULT_JOIN_TIMEOUT_SECONDS
    batch_attempts: int = DEFAULT_BATCH_ATTEMPTS


def translation_settings(settings: object, container_image: str) -> TranslationSettings:
    """`TranslationSettings` from the executor's settings (or anything with those attributes).

    Every field of `TranslationSettings` is taken from the attribute of the same name when
    present, so the executor, `plan` and `doctor` translate jobs identically.
    """
    values: dict[str, object] = {"default_image": container_image}
    for name, spec in TranslationSettings.__dataclass_fields__.items():
        if name == "default_image" or not hasattr(settings, name):
            continue
        value = getattr(settings, name)
        if value is None and spec.default_factory is not MISSING:  # unset mappings
            value = spec.default_factory()
        values[name] = value
    return TranslationSettings(**values)  # type: ignore[arg-type]


def _given(res: Mapping[str, object], name: str) -> bool:
    """The resource is set (Snakemake passes unset ones as None or "")."""
    return res.get(name) not in (None, "")


def _mib_from_mb(mb: float) -> float:
    """Snakemake's *_mb resources are 10^6 bytes; Batch sizes are MiB (2^20 bytes)."""
    return mb * 1_000_000 / 1_048_576


def _positive_int(rule: str, name: str, value: object, minimum: int = 1) -> int:
    """Accept ints and integral strings/floats; Snakemake passes resources as int or str."""
    if isinstance(value, bool):
        raise ResourceError(rule, name, value, f"must be a whole number >= {minimum}.")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ResourceError(rule, name, value, f"must be a whole number >= {minimum}.") from None
    if not number.is_integer() or number < minimum:
        raise ResourceError(rule, name, value, f"must be a whole number >= {minimum}.")
    return int(number)


def _positive_number(rule: str, name: str, value: object) -> float:
    if isinstance(value, bool):
        raise ResourceError(rule, name, value, "must be a number > 0.")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ResourceError(rule, name, value, "must be a number > 0.") from None
    if not number > 0 or math.isinf(number):
        raise ResourceError(rule, name, value, "must be a number > 0.")
    return number


def _flag(rule: str, name: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ResourceError(rule, name, value, "must be True or False.")


def parse_tags(text: str, what: str = "tags") -> dict[str, str]:
    """Parse `KEY=VALUE` items separated by commas or whitespace."""
    tags: dict[str, str] = {}
    for item in text.replace(",", " ").split():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"{what}: '{item}' is not KEY=VALUE.")
        if len(key) > 128 or len(value) > 256:
            raise ValueError(f"{what}: '{key}' is too long (keys <= 128, values <= 256 chars).")
        tags[key] = value
    return tags


def vcpus_of(request: JobRequest) -> int:
    """VCPU is `cpus_per_task` when given (SLURM-style rules), else the job's threads."""
    res = request.resources
    if _given(res, "cpus_per_task"):
        return _positive_int(request.rule, "cpus_per_task", res["cpus_per_task"])
    threads = res.get("_cores", request.threads) if request.is_group else request.threads
    return _positive_int(request.rule, "threads", threads)


def memory_mib_of(request: JobRequest, default_mib: int) -> int:
    """MEMORY in MiB: `mem_mib`, else `mem_mb` (10^6 bytes) converted and rounded up."""
    res = request.resources
    if _given(res, "mem_mib"):
        mib = math.ceil(_positive_number(request.rule, "mem_mib", res["mem_mib"]))
    elif _given(res, "mem_mb"):
        mb = _positive_number(request.rule, "mem_mb", res["mem_mb"])
        mib = math.ceil(_mib_from_mb(mb))
    else:
        mib = default_mib
    return max(mib, MEMORY_FLOOR_MIB)


def gpus_of(request: JobRequest) -> int:
    res = request.resources
    for name in ("gpu", "nvidia_gpu"):
        if _given(res, name):
            return _positive_int(request.rule, name, res[name], minimum=0)
    return 0


def timeout_of(request: JobRequest) -> int | None:
    """`runtime` is in minutes in Snakemake; Batch wants at least 60 seconds."""
    value = request.resources.get("runtime")
    if value in (None, ""):
        return None
    minutes = _positive_number(request.rule, "runtime", value)
    if minutes < 1:
        raise ResourceError(
            request.rule, "runtime", value, "must be at least 1 minute (Batch's minimum timeout)."
        )
    return max(MIN_TIMEOUT_SECONDS, math.ceil(minutes * 60))


def resolve_queue(request: JobRequest, settings: TranslationSettings) -> str:
    """Pick the job queue: explicit rule queue > GPU model map > GPU queue > default queue."""
    res = request.resources
    rule = request.rule
    if _given(res, "awsbatch_queue"):
        return str(res["awsbatch_queue"])
    if mpi_layout_of(request) is not None:
        if not settings.multinode_job_queue:
            raise ResourceError(
                rule,
                "mpi",
                res.get("mpi"),
                "multi-node MPI jobs need a queue: set --awsbatch-mpi-multinode-job-queue "
                "(an EC2 on-demand queue) or resources: awsbatch_queue='<queue>'.",
            )
        return settings.multinode_job_queue
    manufacturer = res.get("gpu_manufacturer")
    if manufacturer not in (None, "") and str(manufacturer).lower() != "nvidia":
        raise ResourceError(
            rule,
            "gpu_manufacturer",
            manufacturer,
            "AWS Batch schedules only NVIDIA GPUs; use gpu_manufacturer='nvidia' or route the "
            "rule to a queue of your own with resources: awsbatch_queue='<queue>'.",
        )
    model = res.get("gpu_model")
    if model not in (None, ""):
        queue = settings.gpu_queues.get(str(model)) or settings.gpu_queues.get(str(model).lower())
        if queue is None:
            known = ", ".join(sorted(settings.gpu_queues)) or "none"
            raise ResourceError(
                rule,
                "gpu_model",
                model,
                f"no queue is mapped to this GPU model (mapped: {known}). Map it with "
                f"--awsbatch-mpi-gpu-queues {model}=<queue>, or set resources: "
                "awsbatch_queue='<queue>' on the rule.",
            )
        return queue
    if gpus_of(request) > 0 and settings.gpu_job_queue:
        return settings.gpu_job_queue
    return settings.job_queue


def fargate_size(vcpus: float, memory_mib: int) -> tuple[float, int]:
    """Round a request up to the nearest vCPU/memory pair that Fargate accepts."""
    for cpu, (low, high, step) in FARGATE_SIZES.items():
        if cpu < vcpus or memory_mib > high:
            continue
        memory = max(low, low + math.ceil((memory_mib - low) / step) * step)
        return cpu, memory
    raise ValueError("too large for Fargate")


def _container_options(request: JobRequest) -> tuple[int | None, int | None, bool]:
    """Priority, shared memory and privileged flag from the `awsbatch_*` resources."""
    res, rule = request.resources, request.rule
    priority: int | None = None
    if _given(res, "awsbatch_priority"):
        priority = _positive_int(rule, "awsbatch_priority", res["awsbatch_priority"], minimum=0)
        if priority > MAX_PRIORITY:
            raise ResourceError(rule, "awsbatch_priority", priority, "must be 0..9999.")
    shm: int | None = None
    if _given(res, "awsbatch_shm_mb"):
        shm = _positive_int(rule, "awsbatch_shm_mb", res["awsbatch_shm_mb"])
    privileged = _flag(rule, "awsbatch_privileged", res.get("awsbatch_privileged", False))
    return priority, shm, privileged


def mpi_layout_of(request: JobRequest) -> MpiLayout | None:
    """Spread `tasks` over nodes the way the rule asks, or None for a non-MPI rule.

    `nodes` and/or `tasks_per_node` fix the layout and must divide `tasks` exactly. With
    neither, the rule's `threads` is the vCPU count of one node and as many nodes as needed
    are used: with `cpus_per_task` c, each node runs threads // c tasks.
    """
    res, rule = request.resources, request.rule
    has_mpi, has_tasks = _given(res, "mpi"), _given(res, "tasks")
    if not has_mpi:
        if has_tasks and _positive_int(rule, "tasks", res["tasks"]) > 1:
            raise ResourceError(
                rule,
                "tasks",
                res["tasks"],
                "tasks > 1 needs an MPI launcher: add resources: mpi='mpirun' and call "
                "{resources.mpi} -n {resources.tasks} in the shell command.",
            )
        for name in ("nodes", "tasks_per_node"):
            if _given(res, name) and _positive_int(rule, name, res[name]) > 1:
                raise ResourceError(
                    rule,
                    name,
                    res[name],
                    "several nodes need an MPI rule: add resources: mpi='mpirun' and tasks=N.",
                )
        return None
    if not has_tasks:
        raise ResourceError(
            rule,
            "mpi",
            res["mpi"],
            "an MPI rule needs the number of ranks: add resources: tasks=N.",
        )
    tasks = _positive_int(rule, "tasks", res["tasks"])
    cpus = (
        _positive_int(rule, "cpus_per_task", res["cpus_per_task"])
        if _given(res, "cpus_per_task")
        else 1
    )
    nodes = _positive_int(rule, "nodes", res["nodes"]) if _given(res, "nodes") else None
    per_node = (
        _positive_int(rule, "tasks_per_node", res["tasks_per_node"])
        if _given(res, "tasks_per_node")
        else None
    )
    if per_node is not None:
        if tasks % per_node:
            raise ResourceError(
                rule,
                "tasks_per_node",
                per_node,
                f"tasks={tasks} is not a multiple of tasks_per_node={per_node}; make tasks a "
                "multiple of it or drop tasks_per_node.",
            )
        if nodes is not None and nodes * per_node != tasks:
            raise ResourceError(
                rule,
                "nodes",
                nodes,
                f"nodes={nodes} x tasks_per_node={per_node} must equal tasks={tasks}.",
            )
        nodes = tasks // per_node
    elif nodes is not None:
        if tasks % nodes:
            raise ResourceError(
                rule,
                "nodes",
                nodes,
                f"tasks={tasks} cannot be spread evenly over {nodes} nodes; make tasks a "
                "multiple of nodes or set tasks_per_node.",
            )
        per_node = tasks // nodes
    else:
        threads = _positive_int(rule, "threads", request.threads)
        per_node = max(1, threads // cpus)
        nodes = math.ceil(tasks / per_node)
        per_node = min(per_node, tasks)
    if nodes > MAX_NODES:
        raise ResourceError(rule, "nodes", nodes, f"AWS Batch runs at most {MAX_NODES} nodes.")
    gpus = gpus_of(request)
    instance = res.get("awsbatch_instance_type")
    return MpiLayout(
        nodes=nodes,
        tasks=tasks,
        tasks_per_node=per_node,
        cpus_per_task=cpus,
        slots_per_node=gpus if gpus else per_node,
        instance_type=str(instance) if instance not in (None, "") else None,
    )


def mpi_environment(
    layout: MpiLayout, command: tuple[str, ...], key_uri: str, join_timeout: int
) -> dict[str, str]:
    """What the node agent reads: the Snakemake command to run, the layout, and where the
    job's rendezvous key is (never the key: DescribeJobs shows this to anyone allowed)."""
    return {
        "AWSBATCH_MPI_COMMAND": command[-1],
        ENV_KEY_URI: key_uri,
        "AWSBATCH_MPI_SLOTS": str(layout.slots_per_node),
        "AWSBATCH_MPI_TASKS": str(layout.tasks),
        "AWSBATCH_MPI_JOIN_TIMEOUT": str(join_timeout),
    }


def _check_multinode_queue(rule: str, queue: QueueInfo) -> None:
    if queue.platform is Platform.FARGATE or queue.spot_only:
        kind = "Fargate" if queue.platform is Platform.FARGATE else "Spot"
        raise ResourceError(
            rule,
            "mpi",
            queue.name,
            f"queue '{queue.name}' runs on {kind}, where AWS Batch cannot run multi-node "
            "jobs; use an EC2 on-demand queue (--awsbatch-mpi-multinode-job-queue).",
        )


def translate(
    request: JobRequest,
    settings: TranslationSettings,
    queue: QueueInfo,
    command: tuple[str, ...],
    environment: Mapping[str, str],
    name: str,
    run_tags: Mapping[str, str],
    mpi_key_uri: str = "",
) -> JobSpec:
    """Build the full `JobSpec`; raises `ResourceError` for anything Batch would refuse.

    For an MPI rule, `command` (Snakemake's job command) is handed to the node agent through
    the environment, together with `mpi_key_uri` (where the nodes read the job's rendezvous
    key, see `mpi.key`), and the agent becomes the command of every
    node; sizes are per node.
    """
    rule = request.rule
    res = request.resources
    layout = mpi_layout_of(request)
    warnings: list[str] = []

    vcpus: float = vcpus_of(request)
    if layout is not None:
        _check_multinode_queue(rule, queue)
        vcpus = layout.tasks_per_node * layout.cpus_per_task
        if not mpi_key_uri:
            raise ResourceError(
                rule,
                "mpi",
                res.get("mpi"),
                "the nodes of a multi-node job read their rendezvous key from the default "
                "storage prefix; run with --default-storage-provider s3 "
                "--default-storage-prefix s3://<bucket>/<prefix>.",
            )
        environment = {
            **environment,
            **mpi_environment(layout, command, mpi_key_uri, settings.mpi_join_timeout),
        }
        command = MPI_AGENT_COMMAND
    memory = memory_mib_of(request, settings.default_memory_mib)
    gpus = gpus_of(request)
    timeout = timeout_of(request)

    ephemeral_gib: int | None = None
    disk = res.get("disk_mib") or res.get("disk_mb")
    if queue.platform is Platform.FARGATE:
        if gpus:
            raise ResourceError(
                rule,
                "gpu",
                gpus,
                f"queue '{queue.name}' runs on Fargate, which has no GPUs; set "
                "--awsbatch-mpi-gpu-job-queue to an EC2 GPU queue.",
            )
        try:
            new_vcpus, new_memory = fargate_size(vcpus, memory)
        except ValueError:
            raise ResourceError(
                rule,
                "threads/mem_mb",
                f"{vcpus} vCPU, {memory} MiB",
                "exceeds Fargate's largest size (16 vCPU, 120 GiB); use an EC2 queue.",
            ) from None
        if (new_vcpus, new_memory) != (vcpus, memory):
            warnings.append(
                f"Rule '{rule}': {vcpus:g} vCPU / {memory} MiB rounded up to "
                f"{new_vcpus:g} vCPU / {new_memory} MiB, the nearest size Fargate accepts."
            )
        vcpus, memory = new_vcpus, new_memory
        if disk not in (None, ""):
            name_ = "disk_mib" if res.get("disk_mib") else "disk_mb"
            disk_mib = _positive_number(rule, name_, disk)
            if name_ == "disk_mb":
                disk_mib = _mib_from_mb(disk_mib)
            ephemeral_gib = max(FARGATE_MIN_EPHEMERAL_GIB, math.ceil(disk_mib / 1024))
            if ephemeral_gib > FARGATE_MAX_EPHEMERAL_GIB:
                raise ResourceError(
                    rule, name_, disk, "Fargate ephemeral storage is at most 200 GiB."
                )
        if not settings.execution_role_arn:
            raise ResourceError(
                rule,
                "awsbatch_queue",
                queue.name,
                "Fargate jobs need an execution role; set --awsbatch-mpi-execution-role-arn.",
            )

    priority, shm, privileged = _container_options(request)
    if privileged and queue.platform is Platform.FARGATE:
        raise ResourceError(
            rule, "awsbatch_privileged", True, "Fargate does not run privileged containers."
        )
    tags = dict(settings.tags)
    tags.update(run_tags)
    if _given(res, "awsbatch_tags"):
        try:
            tags.update(parse_tags(str(res["awsbatch_tags"]), "awsbatch_tags"))
        except ValueError as err:
            raise ResourceError(
                rule, "awsbatch_tags", res["awsbatch_tags"], f"{err} Use 'k1=v1,k2=v2'."
            ) from None
    if len(tags) > 50:
        raise ResourceError(rule, "awsbatch_tags", len(tags), "Batch allows at most 50 tags.")

    image = str(res.get("awsbatch_image") or settings.default_image)
    job_definition = res.get("awsbatch_job_definition")
    shape = JobShape(
        image=image,
        platform=queue.platform,
        privileged=privileged,
        shm_mib=shm,
        log_group=settings.log_group,
        job_role_arn=settings.job_role_arn,
        execution_role_arn=(
            settings.execution_role_arn if queue.platform is Platform.FARGATE else None
        ),
        ephemeral_storage_gib=ephemeral_gib,
        assign_public_ip=settings.assign_public_ip and queue.platform is Platform.FARGATE,
        multinode=layout is not None,
    )
    return JobSpec(
        rule=rule,
        name=name,
        queue=queue.name,
        shape=shape,
        size=JobSize(vcpus=vcpus, memory_mib=memory, gpus=gpus),
        command=command,
        environment=tuple(sorted(environment.items())),
        timeout_seconds=timeout,
        job_definition=str(job_definition) if job_definition not in (None, "") else None,
        priority=priority,
        share=str(res["awsbatch_share"]) if _given(res, "awsbatch_share") else None,
        tags=tuple(sorted(tags.items())),
        mpi=layout,
        batch_attempts=settings.batch_attempts,
        warnings=tuple(warnings),
    )


def validate_request(request: JobRequest, settings: TranslationSettings) -> None:
    """Cheap checks that need no queue information (used to vet the whole DAG up front)."""
    mpi_layout_of(request)
    vcpus_of(request)
    memory_mib_of(request, settings.default_memory_mib)
    gpus_of(request)
    timeout_of(request)
    resolve_queue(request, settings)
    _container_options(request)
