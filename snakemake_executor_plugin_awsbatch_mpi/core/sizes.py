"""How big a job is: vCPUs, memory, disk, GPUs and timeout from its resources, and the
vCPU/memory pairs Fargate accepts.

Snakemake's units (MB, minutes) become Batch's (MiB, seconds) here, once.
"""

from __future__ import annotations

import math

from .request import JobRequest
from .spec import ResourceError
from .values import given, mib_from_mb, positive_int, positive_number

# Snakemake's own test workflows ask for mem="5MB"; a Python process running Snakemake needs
# far more. Requests below the floor are raised to it (never rejected, never shrunk).
MEMORY_FLOOR_MIB = 256

MIN_TIMEOUT_SECONDS = 60

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


def vcpus_of(request: JobRequest) -> int:
    """VCPU is `cpus_per_task` when given (SLURM-style rules), else the job's threads."""
    res = request.resources
    if given(res, "cpus_per_task"):
        return positive_int(request.rule, "cpus_per_task", res["cpus_per_task"])
    threads = res.get("_cores", request.threads) if request.is_group else request.threads
    # Snakemake accepts `threads: 0` (a job that needs no core of its own); Batch's smallest
    # container has 1 vCPU, like the 256 MiB memory floor below.
    return max(1, positive_int(request.rule, "threads", threads, minimum=0))


def sized_resource(request: JobRequest, base: str) -> tuple[str, object] | None:
    """(name, value) of a sized resource (`mem`, `disk`), preferring the unit the user wrote.

    Snakemake derives `mem_mib` from `mem_mb` (and the reverse), so both are present; the one
    named in the Snakefile is used and named in errors (`mem_mb=-100`, not `mem_mib=-95`).
    """
    res = request.resources
    names = (f"{base}_mib", f"{base}_mb")
    written = [n for n in names if n in request.written]
    for name in written + [n for n in names if n not in written]:
        if given(res, name):
            return name, res[name]
    return None


def _size_mib(request: JobRequest, base: str) -> tuple[str, object, float] | None:
    """(name as written, value as written, MiB) of a sized resource, validated (> 0)."""
    found = sized_resource(request, base)
    if found is None:
        return None
    name, value = found
    number = positive_number(request.rule, name, value)
    return name, value, number if name.endswith("_mib") else mib_from_mb(number)


def memory_mib_of(request: JobRequest, default_mib: int) -> int:
    """MEMORY in MiB: `mem_mib` or `mem_mb` (10^6 bytes, converted and rounded up)."""
    found = _size_mib(request, "mem")
    mib = math.ceil(found[2]) if found else default_mib
    return max(mib, MEMORY_FLOOR_MIB)


def disk_mib_of(request: JobRequest) -> tuple[str, object, float] | None:
    """`disk_mb` / `disk_mib` validated on every platform (only Fargate uses it)."""
    return _size_mib(request, "disk")


def gpus_of(request: JobRequest) -> int:
    res = request.resources
    for name in ("gpu", "nvidia_gpu"):
        if given(res, name):
            return positive_int(request.rule, name, res[name], minimum=0)
    return 0


def timeout_of(request: JobRequest) -> int | None:
    """`runtime` is in minutes in Snakemake; Batch wants at least 60 seconds."""
    value = request.resources.get("runtime")
    if value in (None, ""):
        return None
    minutes = positive_number(request.rule, "runtime", value)
    if minutes < 1:
        raise ResourceError(
            request.rule, "runtime", value, "must be at least 1 minute (Batch's minimum timeout)."
        )
    return max(MIN_TIMEOUT_SECONDS, math.ceil(minutes * 60))


def fargate_size(vcpus: float, memory_mib: int) -> tuple[float, int]:
    """Round a request up to the nearest vCPU/memory pair that Fargate accepts."""
    for cpu, (low, high, step) in FARGATE_SIZES.items():
        if cpu < vcpus or memory_mib > high:
            continue
        memory = max(low, low + math.ceil((memory_mib - low) / step) * step)
        return cpu, memory
    raise ValueError("too large for Fargate")
