"""Translate a Snakemake job's resources into a Batch `JobSpec` (pure, no AWS calls).

All validation lives here so that a bad rule stops the run before anything is submitted, with an
error naming the rule, the resource, the value and what is allowed.
"""

from __future__ import annotations

import difflib
import math
import re
import shlex
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field

from .capacity import instance_size, placement_problem
from .mpi import (
    ENV_COMMAND,
    ENV_JOIN_TIMEOUT,
    ENV_KEY_URI,
    ENV_LOCAL_FS_ROOT,
    ENV_SLOTS,
    ENV_TASKS,
)
from .spec import (
    JobShape,
    JobSize,
    JobSpec,
    MpiLayout,
    Platform,
    QueueInfo,
    ResourceError,
    Volume,
    VolumeKind,
)

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
    # The rule's resources as written in the Snakefile (plain values only), before Snakemake
    # rounds floats and derives mem_mib/disk_mib: errors name what the user wrote.
    written: Mapping[str, object] = field(default_factory=dict)


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
    # Environment variable name → Secrets Manager / SSM Parameter Store ARN, for every job.
    secrets: Mapping[str, str] = field(default_factory=dict)
    # Shared file systems mounted in every job (--awsbatch-mpi-volumes).
    volumes: tuple[Volume, ...] = ()


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


# Batch's tag rules (User Guide, "Tag restrictions"): letters, digits, spaces and + - = . _ : / @;
# no key or value may start with aws: in any case; at most 50 tags per resource.
TAG_SPECIALS = frozenset("+-=._:/@ ")
MAX_TAGS = 50


def _tag_text_ok(text: str) -> bool:
    return all(ch.isalnum() or ch in TAG_SPECIALS for ch in text)


def tag_problem(key: str, value: str) -> str | None:
    """Why Batch would refuse the tag `key=value`, or None."""
    for what, text in (("key", key), ("value", value)):
        if text.lower().startswith("aws:"):
            return f"tag {what} '{text}' starts with 'aws:', which AWS reserves for itself"
        if not _tag_text_ok(text):
            bad = "".join(sorted({ch for ch in text if not _tag_text_ok(ch)}))
            return (
                f"tag {what} '{text}' holds characters Batch refuses ({bad!r}); tags may use "
                "letters, digits, spaces and + - = . _ : / @"
            )
    return None


def safe_tag_value(text: str) -> str:
    """A value Batch accepts, for tags the plugin writes (e.g. a directory name)."""
    cleaned = "".join(ch if _tag_text_ok(ch) else "_" for ch in text)[:256]
    return "_" + cleaned[1:] if cleaned.lower().startswith("aws:") else cleaned


SECRET_ARN = re.compile(r"^arn:aws[a-z-]*:(secretsmanager|ssm):[a-z0-9-]+:\d{12}:\S+$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def parse_secrets(text: str, what: str) -> dict[str, str]:
    """`NAME=ARN ...` → {NAME: ARN}; each ARN names a Secrets Manager secret or SSM parameter."""
    secrets = parse_tags(text, what)
    for name, arn in secrets.items():
        problem = secret_problem(name, arn)
        if problem:
            raise ValueError(f"{what}: {problem}")
    return secrets


def secret_problem(name: str, arn: str) -> str | None:
    if not ENV_NAME.match(name):
        return f"'{name}' is not an environment variable name"
    if not SECRET_ARN.match(arn):
        return (
            f"'{name}={arn}' must point at a Secrets Manager secret "
            "(arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME) or an SSM parameter "
            "(arn:aws:ssm:REGION:ACCOUNT:parameter/NAME)"
        )
    return None


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
    if _given(res, name):
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
            name if _given(res, name) else "--awsbatch-mpi-volumes",
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
    if not _given(res, name):
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


# What Open MPI and libfabric need to use EFA (AWS EFA user guide): the libfabric EFA
# provider through Open MPI's OFI transport instead of TCP.
EFA_ENVIRONMENT = {"FI_PROVIDER": "efa", "OMPI_MCA_pml": "cm", "OMPI_MCA_mtl": "ofi"}
# Families whose EFA devices do RDMA reads/writes (FI_EFA_USE_DEVICE_RDMA=1 there only).
EFA_RDMA_FAMILIES = frozenset({"p4d", "p4de", "p5", "p5e", "p5en", "p6", "trn1", "trn1n", "trn2"})
MAX_EFA_DEVICES = 32


def efa_devices_of(request: JobRequest, layout: MpiLayout | None) -> int:
    """`awsbatch_efa`: True for one EFA device per node, or the number of devices (MPI only)."""
    res, rule, name = request.resources, request.rule, "awsbatch_efa"
    if not _given(res, name):
        return 0
    value = res[name]
    if isinstance(value, bool) or str(value).strip().lower() in ("true", "false", "yes", "no"):
        devices = int(_flag(rule, name, value))
    else:
        devices = _positive_int(rule, name, value, minimum=0)
    if devices > MAX_EFA_DEVICES:
        raise ResourceError(
            rule, name, value, f"must be True or a number of devices from 1 to {MAX_EFA_DEVICES}."
        )
    if devices and layout is None:
        raise ResourceError(
            rule,
            name,
            value,
            "applies only to multi-node MPI rules (resources mpi and tasks); remove it.",
        )
    return devices


def efa_environment(layout: MpiLayout) -> dict[str, str]:
    env = dict(EFA_ENVIRONMENT)
    family = (layout.instance_type or "").split(".")[0]
    if family in EFA_RDMA_FAMILIES:
        env["FI_EFA_USE_DEVICE_RDMA"] = "1"
    return env


def vcpus_of(request: JobRequest) -> int:
    """VCPU is `cpus_per_task` when given (SLURM-style rules), else the job's threads."""
    res = request.resources
    if _given(res, "cpus_per_task"):
        return _positive_int(request.rule, "cpus_per_task", res["cpus_per_task"])
    threads = res.get("_cores", request.threads) if request.is_group else request.threads
    # Snakemake accepts `threads: 0` (a job that needs no core of its own); Batch's smallest
    # container has 1 vCPU, like the 256 MiB memory floor below.
    return max(1, _positive_int(request.rule, "threads", threads, minimum=0))


def _sized_resource(request: JobRequest, base: str) -> tuple[str, object] | None:
    """(name, value) of a sized resource (`mem`, `disk`), preferring the unit the user wrote.

    Snakemake derives `mem_mib` from `mem_mb` (and the reverse), so both are present; the one
    named in the Snakefile is used and named in errors (`mem_mb=-100`, not `mem_mib=-95`).
    """
    res = request.resources
    names = (f"{base}_mib", f"{base}_mb")
    written = [n for n in names if n in request.written]
    for name in written + [n for n in names if n not in written]:
        if _given(res, name):
            return name, res[name]
    return None


def _size_mib(request: JobRequest, base: str) -> tuple[str, object, float] | None:
    """(name as written, value as written, MiB) of a sized resource, validated (> 0)."""
    found = _sized_resource(request, base)
    if found is None:
        return None
    name, value = found
    number = _positive_number(request.rule, name, value)
    return name, value, number if name.endswith("_mib") else _mib_from_mb(number)


def memory_mib_of(request: JobRequest, default_mib: int) -> int:
    """MEMORY in MiB: `mem_mib` or `mem_mb` (10^6 bytes, converted and rounded up)."""
    found = _size_mib(request, "mem")
    mib = math.ceil(found[2]) if found else default_mib
    return max(mib, MEMORY_FLOOR_MIB)


def disk_mib_of(request: JobRequest) -> tuple[str, object, float] | None:
    """`disk_mb` / `disk_mib` validated on every platform (only Fargate uses it)."""
    return _size_mib(request, "disk")


# Whole-number resources: Snakemake rounds a float such as gpu=1.5 to 2 before the plugin
# sees it, so the value as written is checked.
WHOLE_NUMBERS = (
    "gpu", "nvidia_gpu", "tasks", "nodes", "tasks_per_node", "cpus_per_task",
    "awsbatch_priority", "awsbatch_shm_mb", "awsbatch_efa",
)


# Every per-rule resource of this plugin. Any other `awsbatch_*` name is a typo that would
# otherwise be ignored without a word (a job sent to the default queue, say).
AWSBATCH_RESOURCES = frozenset(
    {
        "awsbatch_efa",
        "awsbatch_image",
        "awsbatch_instance_type",
        "awsbatch_job_definition",
        "awsbatch_priority",
        "awsbatch_privileged",
        "awsbatch_queue",
        "awsbatch_secrets",
        "awsbatch_share",
        "awsbatch_shm_mb",
        "awsbatch_tags",
        "awsbatch_volumes",
        "awsbatch_workdir",
    }
)


def check_resource_names(request: JobRequest) -> None:
    """Refuse an `awsbatch_*` resource the plugin does not know, suggesting the closest."""
    for name in sorted({*request.resources, *request.written}):
        if name.lower().startswith("awsbatch") and name not in AWSBATCH_RESOURCES:
            close = difflib.get_close_matches(name, sorted(AWSBATCH_RESOURCES), n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            value = request.written.get(name, request.resources.get(name))
            raise ResourceError(
                request.rule,
                name,
                value,
                f"this plugin has no such resource; {hint}its resources are "
                f"{', '.join(sorted(AWSBATCH_RESOURCES))}.",
            )


def check_written(request: JobRequest) -> None:
    """Refuse values Snakemake would silently change, or the plugin would silently ignore."""
    check_resource_names(request)
    rule, written = request.rule, request.written
    for name in WHOLE_NUMBERS:
        value = written.get(name)
        if isinstance(value, float) and not value.is_integer():
            raise ResourceError(
                rule,
                name,
                value,
                f"must be a whole number; Snakemake would round it to {round(value)} without "
                "a word. Write the whole number you mean.",
            )
    res = request.resources
    image = res.get("awsbatch_image", written.get("awsbatch_image"))
    if ("awsbatch_image" in res or "awsbatch_image" in written) and isinstance(image, str):
        if not image.strip():
            raise ResourceError(
                rule,
                "awsbatch_image",
                image,
                "must name a container image (e.g. 'ghcr.io/org/tool:1.0'); remove the "
                "resource to use the default image.",
            )


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
        if _given(res, "awsbatch_instance_type"):
            raise ResourceError(
                rule,
                "awsbatch_instance_type",
                res["awsbatch_instance_type"],
                "applies only to multi-node MPI rules (Batch picks the instance of a "
                "single-node job from its compute environment). Remove it, or route the rule "
                "with awsbatch_queue='<queue>' to a queue whose compute environment allows "
                "that instance type.",
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
    elif gpus_of(request):
        # One rank per GPU: a node runs as many ranks as it has GPUs.
        per_node = min(gpus_of(request), tasks)
        if tasks % per_node:
            raise ResourceError(
                rule,
                "tasks",
                tasks,
                f"one rank per GPU needs tasks to be a multiple of gpu={per_node} (the GPUs "
                "of one node); change tasks or set nodes/tasks_per_node.",
            )
        nodes = tasks // per_node
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
        ENV_COMMAND: command[-1],
        ENV_KEY_URI: key_uri,
        ENV_SLOTS: str(layout.slots_per_node),
        ENV_TASKS: str(layout.tasks),
        ENV_JOIN_TIMEOUT: str(join_timeout),
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
    check_written(request)
    layout = mpi_layout_of(request)
    warnings: list[str] = []

    vcpus: float = vcpus_of(request)
    volumes = volumes_of(request, settings, queue)
    workdir = shared_workdir_of(request, volumes)
    if workdir is not None:
        command = (*command[:-1], in_shared_workdir(command[-1], workdir))
    efa_devices = efa_devices_of(request, layout)
    if layout is not None:
        _check_multinode_queue(rule, queue)
        vcpus = layout.tasks_per_node * layout.cpus_per_task
        if efa_devices:
            environment = {**efa_environment(layout), **environment}
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
    disk = disk_mib_of(request)
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
        if disk is not None:
            disk_name, disk_value, disk_mib = disk
            ephemeral_gib = max(FARGATE_MIN_EPHEMERAL_GIB, math.ceil(disk_mib / 1024))
            if ephemeral_gib > FARGATE_MAX_EPHEMERAL_GIB:
                raise ResourceError(
                    rule,
                    disk_name,
                    disk_value,
                    f"Fargate ephemeral storage is at most {FARGATE_MAX_EPHEMERAL_GIB} GiB "
                    f"(this is {math.ceil(disk_mib / 1024)} GiB); use an EC2 queue.",
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
    _check_placement(request, queue, vcpus, memory, gpus, layout)
    share = _share_of(request, queue)
    tags = _tags_of(request, settings, run_tags)
    secrets = _secrets_of(request, settings, queue)

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
            settings.execution_role_arn
            if queue.platform is Platform.FARGATE or secrets
            else None
        ),
        ephemeral_storage_gib=ephemeral_gib,
        assign_public_ip=settings.assign_public_ip and queue.platform is Platform.FARGATE,
        multinode=layout is not None,
        secrets=secrets,
        volumes=volumes,
        efa_devices=efa_devices,
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
        share=share,
        tags=tags,
        mpi=layout,
        batch_attempts=settings.batch_attempts,
        warnings=tuple(warnings),
    )


def _check_placement(
    request: JobRequest,
    queue: QueueInfo,
    vcpus: float,
    memory: int,
    gpus: int,
    layout: MpiLayout | None,
) -> None:
    """Refuse a job no compute environment of its queue can ever place (it would sit RUNNABLE)."""
    instance = None
    if layout is not None and layout.instance_type:
        instance = instance_size(layout.instance_type)
    problem = placement_problem(
        queue.limits, vcpus, memory, gpus, layout.nodes if layout else 1, instance
    )
    if problem is None:
        return
    res = request.resources
    if layout is not None:
        name, value = "tasks", res.get("tasks")
    elif gpus and "GPU" in problem:
        name, value = ("gpu", res["gpu"]) if _given(res, "gpu") else ("nvidia_gpu", gpus)
    elif "memory" in problem:
        found = _sized_resource(request, "mem")
        name, value = found if found else ("mem_mb", memory)
    else:
        name, value = ("cpus_per_task", res["cpus_per_task"]) if _given(
            res, "cpus_per_task"
        ) else ("threads", vcpus)
    raise ResourceError(
        request.rule,
        name,
        value,
        f"no compute environment of queue '{queue.name}' can ever place this job "
        f"({vcpus:g} vCPU, {memory} MiB" + (f", {gpus} GPU" if gpus else "") + "): "
        f"{problem}. It would sit RUNNABLE forever. Lower the resource, or route the rule "
        "to a larger queue with awsbatch_queue='<queue>'.",
    )


def _share_of(request: JobRequest, queue: QueueInfo) -> str | None:
    """`awsbatch_share` only on fair-share queues, and always there (Batch's rule)."""
    res = request.resources
    share = str(res["awsbatch_share"]) if _given(res, "awsbatch_share") else None
    if share is not None and queue.fair_share is False:
        raise ResourceError(
            request.rule,
            "awsbatch_share",
            share,
            f"queue '{queue.name}' has no fair-share scheduling policy (it runs jobs first in, "
            "first out), so Batch refuses a share identifier. Remove the resource, or route "
            "the rule to a fair-share queue with awsbatch_queue='<queue>'.",
        )
    if share is None and queue.fair_share:
        raise ResourceError(
            request.rule,
            "awsbatch_share",
            None,
            f"queue '{queue.name}' has a fair-share scheduling policy, so Batch needs a share "
            "identifier for every job: add resources: awsbatch_share='<share>'.",
        )
    return share


def _tags_of(
    request: JobRequest, settings: TranslationSettings, run_tags: Mapping[str, str]
) -> tuple[tuple[str, str], ...]:
    """--awsbatch-mpi-tags, the run tags and the rule's `awsbatch_tags`, as Batch accepts."""
    res, rule = request.resources, request.rule
    tags = dict(settings.tags)
    tags.update(run_tags)
    for key, value in settings.tags.items():
        problem = tag_problem(key, value)
        if problem:
            raise ResourceError(
                rule, "--awsbatch-mpi-tags", f"{key}={value}", f"{problem}. Change the tag."
            )
    if _given(res, "awsbatch_tags"):
        text = res["awsbatch_tags"]
        try:
            own = parse_tags(str(text), "awsbatch_tags")
        except ValueError as err:
            raise ResourceError(rule, "awsbatch_tags", text, f"{err} Use 'k1=v1,k2=v2'.") from None
        for key, value in own.items():
            problem = tag_problem(key, value)
            if problem:
                raise ResourceError(rule, "awsbatch_tags", text, f"{problem}. Change the tag.")
        tags.update(own)
    if len(tags) > MAX_TAGS:
        raise ResourceError(
            rule,
            "awsbatch_tags",
            res.get("awsbatch_tags"),
            f"the job would carry {len(tags)} tags ({len(run_tags)} set by the plugin for "
            f"the run, {len(settings.tags)} from --awsbatch-mpi-tags, the rest from the rule); "
            f"Batch allows at most {MAX_TAGS}. Drop some tags.",
        )
    return tuple(sorted(tags.items()))


def _secrets_of(
    request: JobRequest, settings: TranslationSettings, queue: QueueInfo
) -> tuple[tuple[str, str], ...]:
    """--awsbatch-mpi-secrets plus the rule's `awsbatch_secrets`; they need an execution role."""
    res, rule = request.resources, request.rule
    secrets = dict(settings.secrets)
    if _given(res, "awsbatch_secrets"):
        text = res["awsbatch_secrets"]
        try:
            secrets.update(parse_secrets(str(text), "awsbatch_secrets"))
        except ValueError as err:
            raise ResourceError(
                rule, "awsbatch_secrets", text, f"{err} Use 'NAME=ARN,NAME2=ARN2'."
            ) from None
    if secrets and not settings.execution_role_arn:
        raise ResourceError(
            rule,
            "awsbatch_secrets" if _given(res, "awsbatch_secrets") else "--awsbatch-mpi-secrets",
            ", ".join(sorted(secrets)),
            "Batch injects secrets through the ECS execution role: set "
            "--awsbatch-mpi-execution-role-arn to a role that may read them "
            "(secretsmanager:GetSecretValue / ssm:GetParameters).",
        )
    return tuple(sorted(secrets.items()))


def validate_request(request: JobRequest, settings: TranslationSettings) -> None:
    """Cheap checks that need no queue information (used to vet the whole DAG up front)."""
    mpi_layout_of(request)
    vcpus_of(request)
    memory_mib_of(request, settings.default_memory_mib)
    gpus_of(request)
    timeout_of(request)
    resolve_queue(request, settings)
    _container_options(request)
    shared_workdir_of(request, volumes_of(request, settings, QueueInfo(name="")))
    efa_devices_of(request, mpi_layout_of(request))
