"""What the instances of a queue can place: instance types (DescribeInstanceTypes) turned into
shapes, each compute environment's capacity, and whether a rule's demand fits (pure).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..batch.queues import capacity_type
from ..core.capacity import BUNDLES
from .outcomes import CheckResult, failed, passed, warned

_GPU_FAMILY = re.compile(r"^(p\d|g\d|gr\d)")


def is_gpu_family(entry: str) -> bool:
    """p3, p4d, g4dn, g5, g6e, gr6 ... (NVIDIA GPU families; inf/trn are not GPUs)."""
    return bool(_GPU_FAMILY.match(entry.split(".")[0]))


def instance_patterns(env: Mapping[str, Any]) -> list[str]:
    """DescribeInstanceTypes filter values for an environment's `instanceTypes`."""
    patterns: list[str] = []
    for entry in (env.get("computeResources") or {}).get("instanceTypes", []):
        for item in BUNDLES.get(entry, (entry,)):
            patterns.append(item if "." in item else f"{item}.*")
    return sorted(set(patterns))


@dataclass(frozen=True)
class InstanceShape:
    name: str
    vcpus: int
    memory_mib: int
    gpus: int = 0
    # Physical cores and threads per core (DescribeInstanceTypes' defaults); 0 when unknown.
    cores: int = 0
    threads_per_core: int = 0
    efa: bool = False


def shapes_from(instance_types: Iterable[Mapping[str, Any]]) -> dict[str, InstanceShape]:
    """DescribeInstanceTypes items → name → shape."""
    shapes = {}
    for item in instance_types:
        gpus = sum(int(g.get("Count", 0)) for g in (item.get("GpuInfo") or {}).get("Gpus", []))
        shapes[item["InstanceType"]] = InstanceShape(
            name=item["InstanceType"],
            vcpus=int(item["VCpuInfo"]["DefaultVCpus"]),
            memory_mib=int(item["MemoryInfo"]["SizeInMiB"]),
            gpus=gpus,
            cores=int(item["VCpuInfo"].get("DefaultCores", 0)),
            threads_per_core=int(item["VCpuInfo"].get("DefaultThreadsPerCore", 0)),
            efa=bool((item.get("NetworkInfo") or {}).get("EfaSupported", False)),
        )
    return shapes


def _matches(pattern: str, name: str) -> bool:
    return name.startswith(pattern[:-1]) if pattern.endswith("*") else name == pattern


@dataclass(frozen=True)
class EnvCapacity:
    """What one compute environment can ever run."""

    name: str
    kind: str  # EC2, SPOT, FARGATE, FARGATE_SPOT, UNMANAGED
    max_vcpus: int
    usable: bool
    instances: tuple[InstanceShape, ...] = ()
    bundle: bool = False  # instance types chosen by Batch ("optimal", "default_*")
    instances_known: bool = True  # False when the instance types could not be read


def capacity_of(
    env: Mapping[str, Any], catalog: Mapping[str, InstanceShape], known: bool = True
) -> EnvCapacity:
    resources = env.get("computeResources") or {}
    patterns = instance_patterns(env)
    shapes = tuple(
        sorted(
            (s for s in catalog.values() if any(_matches(p, s.name) for p in patterns)),
            key=lambda s: s.name,
        )
    )
    return EnvCapacity(
        name=str(env.get("computeEnvironmentName", "?")),
        kind=capacity_type(env),
        max_vcpus=int(resources.get("maxvCpus", 0)),
        usable=env.get("state") == "ENABLED" and env.get("status") == "VALID",
        instances=shapes,
        bundle=any(t in BUNDLES for t in resources.get("instanceTypes", [])),
        instances_known=known,
    )


# The OS and the ECS agent keep part of every instance's memory for themselves.
MEMORY_HEADROOM = 0.05


@dataclass(frozen=True)
class Demand:
    """What one job (per node for MPI jobs) asks of a queue."""

    rule: str
    queue: str
    vcpus: float
    memory_mib: int
    gpus: int = 0
    nodes: int = 1

    def describe(self) -> str:
        size = f"{self.vcpus:g} vCPU, {self.memory_mib} MiB"
        if self.gpus:
            size += f", {self.gpus} GPU"
        if self.nodes > 1:
            return f"{self.nodes} nodes x ({size})"
        return size


def _fit_on(demand: Demand, env: EnvCapacity) -> tuple[str, str]:
    """('fits' | 'tight' | 'no', why) for one environment."""
    total = demand.vcpus * demand.nodes
    if not env.usable:
        return "no", f"'{env.name}' is not ENABLED and VALID"
    if env.kind == "UNMANAGED":
        return "fits", f"in unmanaged '{env.name}', not checked"
    if total > env.max_vcpus:
        return "no", f"'{env.name}' allows at most {env.max_vcpus} vCPUs in total"
    if env.kind in ("FARGATE", "FARGATE_SPOT"):
        if demand.gpus:
            return "no", f"'{env.name}' runs on Fargate, which has no GPUs"
        return "fits", f"on Fargate in '{env.name}'"
    if not env.instances_known:
        return "fits", f"within the maxvCpus of '{env.name}'; instance types not checked"
    if not env.instances:
        return "no", f"no instance type of '{env.name}' is known in this region"
    candidates = [s for s in env.instances if s.vcpus >= demand.vcpus and s.gpus >= demand.gpus]
    if not candidates:
        biggest = max(env.instances, key=lambda s: (s.gpus, s.vcpus))
        what = "GPUs" if demand.gpus and biggest.gpus < demand.gpus else "vCPUs"
        return "no", (
            f"the largest instance type of '{env.name}' ({biggest.name}: {biggest.vcpus} vCPU, "
            f"{biggest.gpus} GPU) has too few {what}"
        )
    roomy = [s for s in candidates if s.memory_mib * (1 - MEMORY_HEADROOM) >= demand.memory_mib]
    if roomy:
        best = min(roomy, key=lambda s: (s.vcpus, s.memory_mib))
        return "fits", f"on {best.name} in '{env.name}'"
    exact = [s for s in candidates if s.memory_mib >= demand.memory_mib]
    if exact:
        best = min(exact, key=lambda s: s.memory_mib)
        return "tight", (
            f"needs nearly all of the {best.memory_mib} MiB of {best.name} in '{env.name}', "
            "but the OS and the ECS agent keep some memory"
        )
    most = max(c.memory_mib for c in candidates)
    return "no", (
        f"no instance type of '{env.name}' with enough vCPUs has {demand.memory_mib} MiB "
        f"(at most {most} MiB)"
    )


def check_demand(demand: Demand, envs: Sequence[EnvCapacity], jobs: int = 1) -> CheckResult:
    """Can some compute environment of the queue ever run this job? Else it sits RUNNABLE."""
    check = f"rule {demand.rule}"
    count = f"All {jobs} jobs" if jobs != 1 else "Its job"
    if not envs:
        return failed(
            check,
            f"Queue '{demand.queue}' has no compute environment, so {count.lower()} "
            f"({demand.describe()}) can never run. Attach one to the queue.",
        )
    outcomes = [_fit_on(demand, env) for env in envs]
    bundled = any(env.bundle for env in envs)
    for verdict, why in outcomes:
        if verdict == "fits":
            note = (
                " (instance types chosen by Batch, checked against its documented families)"
                if bundled
                else ""
            )
            return passed(
                check,
                f"{count} ({demand.describe()}) can run on queue '{demand.queue}' ({why}){note}.",
            )
    for verdict, why in outcomes:
        if verdict == "tight":
            return warned(
                check,
                f"{count} ({demand.describe()}) on queue '{demand.queue}' {why}; it may stay "
                "RUNNABLE. Lower mem_mb a little or allow a larger instance type.",
            )
    reasons = "; ".join(why for _, why in outcomes)
    return failed(
        check,
        f"{count} ({demand.describe()}) can never run on queue '{demand.queue}' and would sit "
        f"RUNNABLE forever: {reasons}. Lower the rule's resources, or allow larger instance "
        "types / more vCPUs in the compute environment, or route the rule to another queue.",
    )
