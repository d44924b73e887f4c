"""A Batch queue and its compute environments, as DescribeJobQueues and
DescribeComputeEnvironments answer them, turned into the `QueueInfo` the planner routes by.

Pure: shared by the executor (`batch.BatchClient.queue_info`), `doctor` and `plan`, so the
three read a queue the same way. It lives outside `ops/` so that the executor's Batch shell
does not import the operations package.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..core.capacity import limits_of
from ..core.root_volume import (
    LaunchTemplateRef,
    RootVolume,
    launch_template_ref,
    root_volume_of,
)
from ..core.spec import Platform, QueueInfo


def capacity_type(env: Mapping[str, Any]) -> str:
    """EC2, SPOT, FARGATE, FARGATE_SPOT or UNMANAGED."""
    resources = env.get("computeResources")
    if env.get("type") == "UNMANAGED" or resources is None:
        return "UNMANAGED"
    return str(resources.get("type", "EC2"))


def queue_environment_arns(queue: Mapping[str, Any]) -> list[str]:
    order = sorted(queue.get("computeEnvironmentOrder", []), key=lambda e: e.get("order", 0))
    return [e["computeEnvironment"] for e in order]


def environments_of(
    queue: Mapping[str, Any], environments: Mapping[str, Mapping[str, Any]]
) -> list[Mapping[str, Any]]:
    """The queue's compute environments in order (by ARN or name), skipping unknown ones."""
    found = []
    for ref in queue_environment_arns(queue):
        env = environments.get(ref)
        if env is None:
            env = next(
                (e for e in environments.values() if e.get("computeEnvironmentName") == ref),
                None,
            )
        if env is not None:
            found.append(env)
    return found


def launch_template_refs(envs: Sequence[Mapping[str, Any]]) -> list[LaunchTemplateRef]:
    """The launch templates (versions) the EC2 compute environments launch instances with."""
    refs = [launch_template_ref(env) for env in envs if capacity_type(env) in ("EC2", "SPOT")]
    return list(dict.fromkeys(ref for ref in refs if ref is not None))


def root_volumes_of(
    envs: Sequence[Mapping[str, Any]],
    templates: Mapping[LaunchTemplateRef, Mapping[str, Any] | None] | None = None,
) -> tuple[RootVolume, ...]:
    """The root volume of each EC2 environment's instances whose size is known."""
    volumes = (root_volume_of(env, templates or {}) for env in envs)
    return tuple(volume for volume in volumes if volume is not None)


def queue_info_from(
    name: str,
    queue: Mapping[str, Any],
    envs: Sequence[Mapping[str, Any]],
    templates: Mapping[LaunchTemplateRef, Mapping[str, Any] | None] | None = None,
) -> QueueInfo:
    """The `QueueInfo` of a queue: the executor's (batch/client.py) and the doctor's.

    `templates`: the DescribeLaunchTemplateVersions item of each launch template that could
    be read (None: it no longer exists); the root volume of an environment whose template is
    missing here is unknown and left out of `disks`.
    """
    types = [capacity_type(e) for e in envs]
    platform = (
        Platform.FARGATE
        if types and all(t in ("FARGATE", "FARGATE_SPOT") for t in types)
        else Platform.EC2
    )
    return QueueInfo(
        name=name,
        platform=platform,
        spot_only=bool(types) and all(t in ("SPOT", "FARGATE_SPOT") for t in types),
        has_spot=any(t in ("SPOT", "FARGATE_SPOT") for t in types),
        state=queue.get("state", "ENABLED"),
        status=queue.get("status", "VALID"),
        fair_share=bool(queue.get("schedulingPolicyArn")),
        limits=limits_of(envs),
        disks=root_volumes_of(envs, templates),
    )
