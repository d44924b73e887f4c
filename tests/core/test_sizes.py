import pytest

from snakemake_executor_plugin_awsbatch_mpi.core.request import DEFAULT_MEMORY_MIB, JobRequest
from snakemake_executor_plugin_awsbatch_mpi.core.sizes import (
    MEMORY_FLOOR_MIB,
    fargate_size,
    memory_mib_of,
    timeout_of,
    vcpus_of,
)
from snakemake_executor_plugin_awsbatch_mpi.core.spec import ResourceError


def req(threads=1, **resources):
    return JobRequest(rule="r", threads=threads, resources=resources)


def test_vcpus_from_threads_or_cpus_per_task():
    assert vcpus_of(req(threads=4)) == 4
    assert vcpus_of(req(threads=4, cpus_per_task=2)) == 2
    group = JobRequest(rule="g", threads=1, resources={"_cores": 6}, is_group=True)
    assert vcpus_of(group) == 6


@pytest.mark.parametrize("threads", [-1, 1.5, "two"])
def test_negative_or_fractional_threads_rejected(threads):
    with pytest.raises(ResourceError, match="Rule 'r'.*threads"):
        vcpus_of(req(threads=threads))


def test_threads_0_runs_on_batchs_smallest_vcpu():
    """Snakemake's own test_threads0 workflow: `threads: 0` is valid and needs 1 vCPU."""
    assert vcpus_of(req(threads=0)) == 1


def test_memory_from_mib_mb_floor_and_default():
    assert memory_mib_of(req(mem_mib=3000), 2048) == 3000
    # 2000 MB = 1907.35 MiB, rounded up
    assert memory_mib_of(req(mem_mb=2000), 2048) == 1908
    # Snakemake's own test case mem="5MB" is raised to the floor, never rejected
    assert memory_mib_of(req(mem_mb=5), 2048) == MEMORY_FLOOR_MIB
    assert memory_mib_of(req(), DEFAULT_MEMORY_MIB) == DEFAULT_MEMORY_MIB
    with pytest.raises(ResourceError, match="mem_mb"):
        memory_mib_of(req(mem_mb=0), 2048)
    with pytest.raises(ResourceError, match="mem_mb"):
        memory_mib_of(req(mem_mb="lots"), 2048)


def test_runtime_minutes_to_timeout():
    assert timeout_of(req(runtime=10)) == 600
    assert timeout_of(req(runtime=1)) == 60
    assert timeout_of(req()) is None
    with pytest.raises(ResourceError, match="runtime.*at least 1 minute"):
        timeout_of(req(runtime=0.5))


def test_fargate_sizes():
    assert fargate_size(0.25, 100) == (0.25, 512)
    assert fargate_size(1, 2049) == (1.0, 3072)
    assert fargate_size(2, 20000) == (4.0, 20480)
    assert fargate_size(8, 16385) == (8.0, 20480)
    with pytest.raises(ValueError):
        fargate_size(32, 1000)
