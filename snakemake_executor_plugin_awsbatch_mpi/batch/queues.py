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


def queue_info_from(
    name: str, queue: Mapping[str, Any], envs: Sequence[Mapping[str, Any]]
) -> QueueInfo:
    """The `QueueInfo` of a queue: the executor's (batch/client.py) and the doctor's."""
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
        state=queue.get("state", "ENABLED"),
        status=queue.get("status", "VALID"),
        fair_share=bool(queue.get("schedulingPolicyArn")),
        limits=limits_of(envs),
    )
