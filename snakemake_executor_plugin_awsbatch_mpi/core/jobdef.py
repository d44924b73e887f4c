"""`JobSpec` → RegisterJobDefinition and SubmitJob payloads (pure).

A job definition holds only the shape of a job (image, platform, roles, privileged, shared
memory, log configuration, Fargate storage, shared file systems, EFA devices). Its name is a
hash of that shape, so every run of every workflow with the same shape finds and reuses the
same definition instead of registering one per job. Sizes, command and environment travel in
`containerOverrides`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from .naming import job_definition_name
from .spec import JobShape, JobSpec, Platform, Volume, VolumeKind

DEFAULT_LOG_GROUP = "/aws/batch/job"
# Placeholders required by RegisterJobDefinition; every submission overrides them.
_PLACEHOLDER_COMMAND = ["/bin/bash", "-c", "echo 'command comes from containerOverrides'"]
HASH_TAG = "snakemake-awsbatch-mpi-shape"


def container_properties(shape: JobShape) -> dict[str, Any]:
    """The `containerProperties` of a shape; also the input of the content hash."""
    props: dict[str, Any] = {
        "image": shape.image,
        "command": list(_PLACEHOLDER_COMMAND),
        "resourceRequirements": [
            {"type": "VCPU", "value": "1"},
            {"type": "MEMORY", "value": "2048"},
        ],
        "privileged": shape.privileged,
    }
    if shape.job_role_arn:
        props["jobRoleArn"] = shape.job_role_arn
    if shape.shm_mib:
        props["linuxParameters"] = {"sharedMemorySize": shape.shm_mib}
    if shape.efa_devices:
        props.setdefault("linuxParameters", {})["devices"] = [
            {"hostPath": path, "containerPath": path, "permissions": ["READ", "WRITE", "MKNOD"]}
            for path in (f"/dev/infiniband/uverbs{i}" for i in range(shape.efa_devices))
        ]
    if shape.log_group and shape.log_group != DEFAULT_LOG_GROUP:
        props["logConfiguration"] = {
            "logDriver": "awslogs",
            "options": {"awslogs-group": shape.log_group},
        }
    if shape.secrets:
        props["secrets"] = [{"name": k, "valueFrom": v} for k, v in shape.secrets]
        props["executionRoleArn"] = shape.execution_role_arn
    if shape.volumes:
        props["volumes"] = [_volume(i, v) for i, v in enumerate(shape.volumes)]
        props["mountPoints"] = [
            {"sourceVolume": f"vol{i}", "containerPath": v.container_path, "readOnly": v.read_only}
            for i, v in enumerate(shape.volumes)
        ]
    if shape.platform is Platform.FARGATE:
        props.pop("privileged")
        props["executionRoleArn"] = shape.execution_role_arn
        props["fargatePlatformConfiguration"] = {"platformVersion": "LATEST"}
        props["networkConfiguration"] = {
            "assignPublicIp": "ENABLED" if shape.assign_public_ip else "DISABLED"
        }
        if shape.ephemeral_storage_gib:
            props["ephemeralStorage"] = {"sizeInGiB": shape.ephemeral_storage_gib}
    return props


def _volume(index: int, volume: Volume) -> dict[str, Any]:
    """A job definition volume; EFS always with encryption in transit (required with an
    access point, and what AWS recommends for every mount)."""
    if volume.kind is VolumeKind.HOST:
        return {"name": f"vol{index}", "host": {"sourcePath": volume.source}}
    efs: dict[str, Any] = {"fileSystemId": volume.source, "transitEncryption": "ENABLED"}
    if volume.access_point:
        efs["authorizationConfig"] = {"accessPointId": volume.access_point}
    return {"name": f"vol{index}", "efsVolumeConfiguration": efs}


def register_payload(shape: JobShape) -> dict[str, Any]:
    """RegisterJobDefinition request for a shape; the name is the hash of the body."""
    body: dict[str, Any]
    if shape.multinode:
        body = {
            "type": "multinode",
            "platformCapabilities": ["EC2"],
            "nodeProperties": {
                "numNodes": 1,
                "mainNode": 0,
                # An open range: SubmitJob's nodeOverrides.numNodes picks the node count, so
                # one definition serves every MPI rule of this shape.
                "nodeRangeProperties": [
                    {"targetNodes": "0:", "container": container_properties(shape)}
                ],
            },
        }
    else:
        body = {
            "type": "container",
            "platformCapabilities": [shape.platform.value],
            "containerProperties": container_properties(shape),
        }
    name = job_definition_name(body)
    return {
        "jobDefinitionName": name,
        **body,
        "tags": {HASH_TAG: name.rsplit("-", 1)[-1]},
    }


# Infrastructure failures Batch retries by itself; anything else (the rule's own failure,
# out of memory, a timeout) ends the job so Snakemake's --retries stays in charge.
RETRYABLE = (
    {"onStatusReason": "Host EC2*", "action": "RETRY"},  # Spot reclaim, instance lost
    {"onStatusReason": "Task failed to start*", "action": "RETRY"},
    {"onReason": "CannotInspectContainerError*", "action": "RETRY"},
    {"onReason": "DockerTimeoutError*", "action": "RETRY"},
    {"onReason": "*", "action": "EXIT"},
)


def retry_strategy(attempts: int) -> dict[str, Any] | None:
    if attempts <= 1:
        return None
    return {"attempts": attempts, "evaluateOnExit": [dict(rule) for rule in RETRYABLE]}


def _format_vcpus(vcpus: float) -> str:
    return str(int(vcpus)) if float(vcpus).is_integer() else f"{vcpus:g}"


def resource_requirements(spec: JobSpec) -> list[dict[str, str]]:
    reqs = [
        {"type": "VCPU", "value": _format_vcpus(spec.size.vcpus)},
        {"type": "MEMORY", "value": str(spec.size.memory_mib)},
    ]
    if spec.size.gpus:
        reqs.append({"type": "GPU", "value": str(spec.size.gpus)})
    return reqs


def submit_payload(
    spec: JobSpec,
    job_definition: str,
    depends_on: list[str] | None = None,
    array_size: int | None = None,
) -> dict[str, Any]:
    """SubmitJob request for one job (or an array of `array_size` children).

    `job_definition` is a name, name:revision or ARN.
    """
    overrides: dict[str, Any] = {
        "command": list(spec.command),
        "environment": [{"name": k, "value": v} for k, v in spec.environment],
        "resourceRequirements": resource_requirements(spec),
    }
    payload: dict[str, Any] = {
        "jobName": spec.name,
        "jobQueue": spec.queue,
        "jobDefinition": job_definition,
        "propagateTags": True,
    }
    if spec.mpi is None:
        payload["containerOverrides"] = overrides
    else:
        if spec.mpi.instance_type:
            overrides["instanceType"] = spec.mpi.instance_type
        payload["nodeOverrides"] = {
            "numNodes": spec.mpi.nodes,
            "nodePropertyOverrides": [{"targetNodes": "0:", "containerOverrides": overrides}],
        }
    if spec.tags:
        payload["tags"] = dict(spec.tags)
    if spec.timeout_seconds:
        payload["timeout"] = {"attemptDurationSeconds": spec.timeout_seconds}
    if spec.priority is not None:
        payload["schedulingPriorityOverride"] = spec.priority
    if spec.share:
        payload["shareIdentifier"] = spec.share
    retry = retry_strategy(spec.batch_attempts)
    if retry:
        payload["retryStrategy"] = retry
    if array_size:
        payload["arrayProperties"] = {"size": array_size}
    if depends_on:
        payload["dependsOn"] = [{"jobId": i} for i in depends_on]
    return payload


def barrier_shape(shape: JobShape) -> JobShape:
    """Fan-in barriers are plain container jobs, also for multi-node dependents."""
    return replace(
        shape, multinode=False, privileged=False, shm_mib=None, volumes=(), efa_devices=0
    )


def barrier_payload(
    spec: JobSpec, job_definition: str, depends_on: list[str], index: int
) -> dict[str, Any]:
    """A no-op job that succeeds once all of `depends_on` (<= 20) succeeded."""
    fargate = spec.shape.platform is Platform.FARGATE
    payload: dict[str, Any] = {
        "jobName": f"{spec.name[:110]}-fanin{index}",
        "jobQueue": spec.queue,
        "jobDefinition": job_definition,
        "containerOverrides": {
            "command": ["/bin/bash", "-c", "true"],
            "resourceRequirements": [
                {"type": "VCPU", "value": "0.25" if fargate else "1"},
                {"type": "MEMORY", "value": "512" if fargate else "256"},
            ],
        },
        "dependsOn": [{"jobId": i} for i in depends_on],
        "propagateTags": True,
    }
    if spec.tags:
        payload["tags"] = {**dict(spec.tags), "snakemake-barrier": "true"}
    if spec.share:
        payload["shareIdentifier"] = spec.share
    return payload
