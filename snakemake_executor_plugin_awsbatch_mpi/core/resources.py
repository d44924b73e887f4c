"""Translate a Snakemake job's resources into a Batch `JobSpec` (pure, no AWS calls).

Each resource is parsed by `values` and validated by the module of its concern (`sizes`,
`tags`, `mounts`, `multinode`, `routing`); this module checks the resource names and values as
written, and assembles the pieces, with the checks that need the queue, so that a bad rule
stops the run before anything is submitted, with an error naming the rule, the resource, the
value and what is allowed.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping

from .anyimage import (
    RUNTIME_SHELL,
    image_of,
    in_runtime,
    runtime_agent_command,
    with_runtime_volume,
)
from .capacity import instance_size, placement_problem
from .fallback import fallback_queue_of
from .mounts import in_shared_workdir, shared_workdir_of, volumes_of
from .multinode import (
    MPI_AGENT_COMMAND,
    MPI_AGENT_MODULE,
    check_multinode_queue,
    efa_devices_of,
    efa_environment,
    mpi_environment,
    mpi_layout_of,
)
from .request import JobRequest, TranslationSettings
from .routing import resolve_queue
from .sizes import (
    FARGATE_MAX_EPHEMERAL_GIB,
    FARGATE_MIN_EPHEMERAL_GIB,
    disk_mib_of,
    fargate_size,
    gpus_of,
    memory_mib_of,
    sized_resource,
    timeout_of,
    vcpus_of,
)
from .spec import JobShape, JobSize, JobSpec, MpiLayout, Platform, QueueInfo, ResourceError
from .tags import MAX_TAGS, parse_secrets, parse_tags, tag_problem
from .values import flag, given, positive_int

MAX_PRIORITY = 9999

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
        "awsbatch_fallback_queue",
        "awsbatch_image",
        "awsbatch_instance_type",
        "awsbatch_job_definition",
        "awsbatch_priority",
        "awsbatch_privileged",
        "awsbatch_queue",
        "awsbatch_runtime",
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


# The standard resources Snakemake or this plugin reads. Snakemake allows any other name (a
# custom resource), so a name one edit away from one of these (mem_mbb=1000, runtme=60) is
# not refused, but warned about: it would otherwise size nothing without a word.
READ_RESOURCES = frozenset(
    {
        "cpus_per_task",
        "disk",
        "disk_mb",
        "disk_mib",
        "gpu",
        "gpu_manufacturer",
        "gpu_model",
        "mem",
        "mem_mb",
        "mem_mib",
        "mpi",
        "nodes",
        "nvidia_gpu",
        "runtime",
        "tasks",
        "tasks_per_node",
        "tmpdir",
    }
)


def one_edit_apart(a: str, b: str) -> bool:
    """One insertion, deletion, substitution or swap of neighbours turns `a` into `b`."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) > len(b):
        a, b = b, a
    start = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), len(a))
    if len(a) < len(b):
        return a[start:] == b[start + 1 :]
    if a[start + 1 :] == b[start + 1 :]:
        return True
    return a[start : start + 2] == b[start : start + 2][::-1] and a[start + 2 :] == b[start + 2 :]


def resource_typo_warning(request: JobRequest) -> str | None:
    """One warning for a rule's resources that look like typos of resources that are read.

    Only names the user gave are looked at (Snakemake's own start with "_"); `awsbatch_*`
    names are refused by `check_resource_names` instead.
    """
    typos = []
    for name in sorted({*request.resources, *request.written}):
        if name.startswith("_") or name.lower().startswith("awsbatch") or name in READ_RESOURCES:
            continue
        close = [
            known
            for known in difflib.get_close_matches(name, sorted(READ_RESOURCES), n=3, cutoff=0.6)
            if one_edit_apart(name, known)
        ]
        if close:
            typos.append((name, close[0]))
    if not typos:
        return None
    found = " and ".join(f"{name} (did you mean {known}?)" for name, known in typos)
    if len(typos) == 1:
        name = typos[0][0]
        return (
            f"Rule '{request.rule}': resource {found} is not read by Snakemake or this plugin, "
            f"so it changes nothing in the Batch job. Fix the name, or ignore this warning if "
            f"{name} is a custom resource of your own."
        )
    return (
        f"Rule '{request.rule}': resources {found} are not read by Snakemake or this plugin, "
        "so they change nothing in the Batch job. Fix the names, or ignore this warning if "
        "they are custom resources of your own."
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


def _container_options(request: JobRequest) -> tuple[int | None, int | None, bool]:
    """Priority, shared memory and privileged flag from the `awsbatch_*` resources."""
    res, rule = request.resources, request.rule
    priority: int | None = None
    if given(res, "awsbatch_priority"):
        priority = positive_int(rule, "awsbatch_priority", res["awsbatch_priority"], minimum=0)
        if priority > MAX_PRIORITY:
            raise ResourceError(rule, "awsbatch_priority", priority, "must be 0..9999.")
    shm: int | None = None
    if given(res, "awsbatch_shm_mb"):
        shm = positive_int(rule, "awsbatch_shm_mb", res["awsbatch_shm_mb"])
    privileged = flag(rule, "awsbatch_privileged", res.get("awsbatch_privileged", False))
    return priority, shm, privileged


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
    fallback_queue_of(request, settings)
    layout = mpi_layout_of(request)
    warnings: list[str] = []
    typo = resource_typo_warning(request)
    if typo:
        warnings.append(typo)

    vcpus: float = vcpus_of(request)
    choice = image_of(request, settings)
    volumes = volumes_of(request, settings, queue)
    workdir = shared_workdir_of(request, volumes)
    if workdir is not None:
        command = (*command[:-1], in_shared_workdir(command[-1], workdir))
    if choice.runtime:
        # The image has no Snakemake: the job runs it from the plugin's runtime (issue 22).
        volumes = with_runtime_volume(request, settings, queue, choice, volumes)
        command = (*RUNTIME_SHELL, in_runtime(command[-1]))
    efa_devices = efa_devices_of(request, layout)
    if layout is not None:
        check_multinode_queue(rule, queue)
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
        command = (
            runtime_agent_command(MPI_AGENT_MODULE) if choice.runtime else MPI_AGENT_COMMAND
        )
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

    job_definition = res.get("awsbatch_job_definition")
    shape = JobShape(
        image=choice.image,
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
        image_source=choice.source,
        runtime=choice.runtime,
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
        name, value = ("gpu", res["gpu"]) if given(res, "gpu") else ("nvidia_gpu", gpus)
    elif "memory" in problem:
        found = sized_resource(request, "mem")
        name, value = found if found else ("mem_mb", memory)
    else:
        name, value = ("cpus_per_task", res["cpus_per_task"]) if given(
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
    share = str(res["awsbatch_share"]) if given(res, "awsbatch_share") else None
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
    if given(res, "awsbatch_tags"):
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
    if given(res, "awsbatch_secrets"):
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
            "awsbatch_secrets" if given(res, "awsbatch_secrets") else "--awsbatch-mpi-secrets",
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
    fallback_queue_of(request, settings)
    _container_options(request)
    shared_workdir_of(request, volumes_of(request, settings, QueueInfo(name="")))
    efa_devices_of(request, mpi_layout_of(request))
