"""What a queue's compute environments can ever place, and whether a job fits (pure).

A job larger than every compute environment of its queue sits RUNNABLE forever on AWS (and is
paid for in upstream jobs that ran before it). The executor reads each queue's compute
environments once per run (`maxvCpus`, `instanceTypes`) and refuses such jobs before the first
submission.

botocore knows nothing about instance sizes, and DescribeInstanceTypes needs a permission and a
call per run, so sizes come from a small table of common families: the largest size of each
(vCPUs, memory, GPUs). A family not in the table is checked against `maxvCpus` only, and the
message says so. The table errs large (the biggest size of a family), so it never refuses a job
that some listed instance type could run.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# family → (vCPUs, memory GiB, GPUs) of its largest size (metal sizes included).
FAMILY_MAX: dict[str, tuple[int, int, int]] = {
    "m5": (96, 384, 0), "m5a": (96, 384, 0), "m5n": (96, 384, 0), "m6i": (128, 512, 0),
    "m6a": (192, 768, 0), "m6g": (64, 256, 0), "m7i": (192, 768, 0), "m7a": (192, 768, 0),
    "m7g": (64, 256, 0), "c5": (96, 192, 0), "c5a": (96, 192, 0), "c5n": (72, 192, 0),
    "c6i": (128, 256, 0), "c6a": (192, 384, 0), "c6g": (64, 128, 0), "c6gn": (64, 128, 0),
    "c7i": (192, 384, 0), "c7a": (192, 384, 0), "c7g": (64, 128, 0), "c7gn": (64, 128, 0),
    "r5": (96, 768, 0), "r5a": (96, 768, 0), "r5n": (96, 768, 0), "r6i": (128, 1024, 0),
    "r6a": (192, 1536, 0), "r6g": (64, 512, 0), "r7i": (192, 1536, 0), "r7a": (192, 1536, 0),
    "r7g": (64, 512, 0), "x2iedn": (128, 4096, 0), "x2idn": (128, 2048, 0),
    "hpc6a": (96, 384, 0), "hpc7a": (192, 768, 0), "hpc7g": (64, 128, 0),
    "p3": (64, 488, 8), "p3dn": (96, 768, 8), "p4d": (96, 1152, 8), "p5": (192, 2048, 8),
    "g4dn": (96, 384, 8), "g5": (192, 768, 8), "g6": (192, 768, 8), "g6e": (192, 1536, 8),
    "t3": (8, 32, 0), "t3a": (8, 32, 0),
}
# Batch's instance "bundles" (botocore's documentation of ComputeResource.instanceTypes).
BUNDLES: dict[str, tuple[str, ...]] = {
    "optimal": ("m6i", "c6i", "r6i", "c7i"),
    "default_x86_64": ("m6i", "c6i", "r6i", "c7i"),
    "default_arm64": ("m6g", "c6g", "r6g", "c7g"),
}
_SIZE = re.compile(r"^(?:(\d+)x)?large$")


@dataclass(frozen=True)
class InstanceSize:
    """An instance type (or the largest of a family) as far as placement is concerned."""

    name: str
    vcpus: int
    memory_mib: int
    gpus: int | None = 0  # None: not known for this size (GPUs do not scale with vCPUs)


def instance_size(entry: str) -> InstanceSize | None:
    """The size of an `instanceTypes` entry ('c5', 'c5.4xlarge', 'optimal'), None if unknown.

    A sized entry's memory is its family's memory per vCPU times its vCPUs (exact for the
    common families, whose sizes double).
    """
    family, _, size = entry.partition(".")
    if family in BUNDLES:
        return envelope(entry, [instance_size(f) for f in BUNDLES[family]])
    top = FAMILY_MAX.get(family)
    if top is None:
        return None
    vcpus, memory_gib, gpus = top
    if not size or size.startswith("metal"):
        return InstanceSize(entry, vcpus, memory_gib * 1024, gpus)
    match = _SIZE.match(size)
    if size in ("medium", "small", "micro", "nano"):
        count = 1 if size == "medium" else 2
    elif match:
        count = 2 if size == "large" else 4 * int(match.group(1) or 1)
    else:
        return None
    return InstanceSize(entry, count, memory_gib * 1024 * count // vcpus, None if gpus else 0)


def envelope(name: str, sizes: Sequence[InstanceSize | None]) -> InstanceSize | None:
    """The most vCPUs, memory and GPUs any of `sizes` has (each may come from another type,
    so this never refuses what one of them could run); None when one size is unknown."""
    if not sizes or any(s is None for s in sizes):
        return None
    known = [s for s in sizes if s is not None]
    return InstanceSize(
        name,
        max(s.vcpus for s in known),
        max(s.memory_mib for s in known),
        None if any(s.gpus is None for s in known) else max(s.gpus or 0 for s in known),
    )


@dataclass(frozen=True)
class ComputeLimit:
    """What one compute environment of a queue can ever place."""

    name: str
    max_vcpus: int
    # The largest instance the environment may start; None when its types are not known.
    largest: InstanceSize | None = None
    fargate: bool = False
    usable: bool = True


def limit_of(env: Mapping[str, Any]) -> ComputeLimit:
    """A DescribeComputeEnvironments item → its `ComputeLimit`."""
    resources = env.get("computeResources") or {}
    kind = str(resources.get("type", "EC2"))
    types = [str(t) for t in resources.get("instanceTypes", [])]
    largest = envelope(", ".join(types), [instance_size(t) for t in types])
    unmanaged = env.get("type") == "UNMANAGED"
    return ComputeLimit(
        name=str(env.get("computeEnvironmentName", "?")),
        max_vcpus=0 if unmanaged else int(resources.get("maxvCpus", 0)),
        largest=largest,
        fargate=kind.startswith("FARGATE"),
        usable=not unmanaged,
    )


def limits_of(envs: Iterable[Mapping[str, Any]]) -> tuple[ComputeLimit, ...]:
    return tuple(limit_of(env) for env in envs)


def placement_problem(
    limits: Sequence[ComputeLimit],
    vcpus: float,
    memory_mib: int,
    gpus: int = 0,
    nodes: int = 1,
    instance: InstanceSize | None = None,
) -> str | None:
    """Why no compute environment can ever place the job, or None when one can (or unknown).

    Sizes are per node; a multi-node job needs `nodes` x `vcpus` within one environment's
    `maxvCpus`. `instance` is the instance type a multi-node job asks for, when known.
    """
    if not limits or any(not limit.usable for limit in limits):
        return None  # unmanaged environments: not ours to judge
    reasons = []
    for limit in limits:
        total = vcpus * nodes
        if total > limit.max_vcpus:
            reasons.append(
                f"'{limit.name}' allows at most {limit.max_vcpus} vCPUs in total "
                f"(the job needs {total:g})"
            )
            continue
        if limit.fargate:
            return None  # Fargate sizes are checked when the job is translated
        largest = instance or limit.largest
        if largest is None:
            return None  # instance types not in the table: only maxvCpus was checked
        if largest.vcpus < vcpus:
            reasons.append(
                f"the largest instance type of '{limit.name}' ({largest.name}) has "
                f"{largest.vcpus} vCPUs (the job needs {vcpus:g} per node)"
            )
        elif largest.memory_mib < memory_mib:
            reasons.append(
                f"the largest instance type of '{limit.name}' ({largest.name}) has "
                f"{largest.memory_mib} MiB of memory (the job needs {memory_mib} MiB per node)"
            )
        elif gpus and largest.gpus is not None and largest.gpus < gpus:
            reasons.append(
                f"the instance types of '{limit.name}' ({largest.name}) have at most "
                f"{largest.gpus} GPUs (the job needs {gpus})"
            )
        else:
            return None
    return "; ".join(reasons)
