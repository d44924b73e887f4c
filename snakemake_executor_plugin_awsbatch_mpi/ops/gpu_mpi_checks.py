"""Pure checks of the GPU queue and the multi-node MPI queue: GPU families, EC2 on-demand
capacity, placement groups, cores per node and EFA.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..batch.queues import capacity_type
from ..core.capacity import BUNDLES
from .instance_fit import EnvCapacity, is_gpu_family
from .outcomes import CheckResult, failed, passed, warned


def check_gpu_queue(name: str, envs: Sequence[Mapping[str, Any]]) -> CheckResult:
    """The GPU queue can start GPU instances (p*, g* families)."""
    check = f"gpu queue {name}"
    gpu, bundles, fargate, others = [], [], [], []
    for env in envs:
        env_name = env.get("computeEnvironmentName", "?")
        kind = capacity_type(env)
        types = (env.get("computeResources") or {}).get("instanceTypes", [])
        if kind in ("FARGATE", "FARGATE_SPOT"):
            fargate.append(env_name)
        elif any(is_gpu_family(t) for t in types):
            gpu.append(env_name)
        elif any(t in BUNDLES for t in types):
            bundles.append(env_name)
        else:
            others.append(f"{env_name} ({', '.join(types) or 'no instance types'})")
    if gpu:
        return passed(check, f"GPU instance types are allowed in {', '.join(gpu)}.")
    if bundles:
        return warned(
            check,
            f"{', '.join(bundles)} let Batch choose instance types ('optimal'/'default_*'), "
            "whose documented families (m6i, c6i, r6i, c7i) have no GPUs, so GPU jobs may "
            "stay RUNNABLE. List GPU families (e.g. g5, g6, p4d) in the compute environment.",
        )
    if fargate:
        return failed(
            check,
            f"Queue '{name}' runs on Fargate ({', '.join(fargate)}), which has no GPUs. Use "
            "an EC2 compute environment with GPU instance types (g5, g6, p4d, ...).",
        )
    return failed(
        check,
        f"No compute environment of queue '{name}' allows GPU instance types "
        f"({'; '.join(others) or 'none attached'}), so GPU jobs would sit RUNNABLE forever. "
        "Add GPU families (e.g. g5, g6, p4d) to its compute environment.",
    )


UNKNOWN = "?"


def check_multinode_queue(
    name: str,
    envs: Sequence[Mapping[str, Any]],
    placement_groups: Mapping[str, str | None],
) -> list[CheckResult]:
    """EC2 on-demand (not Spot, not Fargate, managed) and in a cluster placement group.

    `placement_groups` maps an environment name to its placement group: from
    `computeResources.placementGroup`, else from its launch template, None when it has
    none and `UNKNOWN` when the launch template could not be read.
    """
    check = f"multinode queue {name}"
    results: list[CheckResult] = []
    bad = [
        f"{e.get('computeEnvironmentName', '?')} ({capacity_type(e)})"
        for e in envs
        if capacity_type(e) != "EC2"
    ]
    if bad or not envs:
        results.append(
            failed(
                check,
                f"Multi-node parallel jobs run only on managed EC2 on-demand compute "
                f"environments, and queue '{name}' uses {', '.join(bad) or 'none'}. Point "
                "--awsbatch-mpi-multinode-job-queue at an EC2 on-demand queue (see "
                "`awsbatch-mpi setup`).",
            )
        )
    else:
        results.append(
            passed(check, f"Queue '{name}' runs on EC2 on-demand capacity, as MPI jobs need.")
        )
    for env in envs:
        env_name = str(env.get("computeEnvironmentName", "?"))
        group = placement_groups.get(env_name)
        if group == UNKNOWN:
            results.append(
                warned(
                    f"placement group {env_name}",
                    f"The launch template of '{env_name}' could not be read, so its placement "
                    "group is unknown. Make sure MPI nodes share a cluster placement group "
                    "(low latency between nodes).",
                )
            )
        elif group:
            results.append(
                passed(
                    f"placement group {env_name}",
                    f"'{env_name}' launches instances in placement group '{group}'.",
                )
            )
        else:
            results.append(
                warned(
                    f"placement group {env_name}",
                    f"'{env_name}' has no placement group: MPI nodes may land far apart and "
                    "communicate slowly. Create a cluster placement group and set it in the "
                    "compute environment (placementGroup) or its launch template.",
                )
            )
    return results


def threads_per_core_from_launch_template(version: Mapping[str, Any] | None) -> int | None:
    """`CpuOptions.ThreadsPerCore` of a launch template version (1: hyper-threading off)."""
    data = (version or {}).get("LaunchTemplateData") or {}
    threads = (data.get("CpuOptions") or {}).get("ThreadsPerCore")
    return int(threads) if threads else None


def check_cores(
    name: str, envs: Sequence[EnvCapacity], threads_per_core: Mapping[str, int | None]
) -> CheckResult:
    """Cores and vCPUs per node of an MPI queue's instance types, so rules can be sized.

    `threads_per_core` maps an environment to its launch template's ThreadsPerCore (None:
    the instance type's default). With one thread per core Batch sees one vCPU per core.
    """
    check = f"cores per node {name}"
    parts = []
    for env in envs:
        override = threads_per_core.get(env.name)
        sizes = []
        for shape in env.instances:
            if not shape.cores:
                continue
            threads = override or shape.threads_per_core or 1
            sizes.append(f"{shape.name} {shape.cores} cores x {threads} thread(s)")
        if sizes:
            mode = "one thread per core" if override == 1 else "instance default threads"
            parts.append(f"'{env.name}' ({mode}): " + ", ".join(sizes))
    if not parts:
        return warned(
            check,
            f"The instance types of queue '{name}' could not be read, so cores per node are "
            "unknown. Allow ec2:DescribeInstanceTypes.",
        )
    return passed(
        check,
        "; ".join(parts) + ". Size MPI rules to the cores (tasks_per_node x cpus_per_task); "
        "`awsbatch-mpi setup --mpi-one-thread-per-core` turns hyper-threading off.",
    )


def check_efa(rule: str, queue: str, envs: Sequence[EnvCapacity]) -> CheckResult:
    """A rule with awsbatch_efa needs every instance type its queue may launch to have EFA."""
    check = f"rule {rule} EFA"
    shapes = [shape for env in envs for shape in env.instances]
    if not shapes:
        return warned(
            check,
            f"Rule '{rule}' asks for EFA, but the instance types of queue '{queue}' could not "
            "be read. Allow ec2:DescribeInstanceTypes, or check them yourself "
            "(network-info.efa-supported).",
        )
    without = sorted({shape.name for shape in shapes if not shape.efa})
    if without:
        return failed(
            check,
            f"Rule '{rule}' asks for EFA (awsbatch_efa), but queue '{queue}' may launch "
            f"{', '.join(without)}, which have no EFA. Limit the compute environment to "
            "EFA-capable types (e.g. c5n.18xlarge, c6in.32xlarge, hpc7g, p4d) or drop "
            "awsbatch_efa.",
        )
    return passed(
        check,
        f"Every instance type of queue '{queue}' supports EFA "
        f"({', '.join(sorted({s.name for s in shapes}))}).",
    )


def placement_from_launch_template(version: Mapping[str, Any] | None) -> str | None:
    """The placement group named in a DescribeLaunchTemplateVersions item, if any."""
    if not version:
        return None
    data = version.get("LaunchTemplateData") or {}
    return (data.get("Placement") or {}).get("GroupName") or None
