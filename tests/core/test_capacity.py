import pytest

from snakemake_executor_plugin_awsbatch_mpi.core.capacity import (
    ComputeLimit,
    InstanceSize,
    instance_size,
    limit_of,
    placement_problem,
)


def env(instance_types, max_vcpus=256, kind="EC2", name="ce"):
    return {
        "computeEnvironmentName": name,
        "type": "MANAGED",
        "computeResources": {"type": kind, "maxvCpus": max_vcpus, "instanceTypes": instance_types},
    }


def test_instance_sizes_from_families_sizes_and_bundles():
    assert instance_size("c5") == InstanceSize("c5", 96, 192 * 1024, 0)
    large = instance_size("c5.large")
    assert (large.vcpus, large.memory_mib) == (2, 4096)
    assert instance_size("c5n.18xlarge").vcpus == 72
    assert instance_size("p3.8xlarge").gpus is None  # GPUs do not scale with vCPUs
    assert instance_size("optimal").memory_mib == 1024 * 1024  # r6i.32xlarge
    assert instance_size("z9q") is None and instance_size("c5.weird") is None


def test_limits_from_describe_answers():
    assert limit_of(env(["optimal"])).largest.vcpus == 192
    assert limit_of(env(["c5", "z9q"])).largest is None  # one unknown family: maxvCpus only
    assert limit_of(env([], kind="FARGATE")).fargate
    assert not limit_of({**env(["c5"]), "type": "UNMANAGED"}).usable


def test_too_many_vcpus_for_max_vcpus():
    problem = placement_problem((limit_of(env(["optimal"])),), 100000, 2048)
    assert "at most 256 vCPUs in total" in problem and "100000" in problem


def test_memory_beyond_the_largest_instance():
    problem = placement_problem((limit_of(env(["c5"])),), 4, 10**6)
    assert "c5" in problem and "196608 MiB of memory" in problem


def test_gpus_beyond_the_family():
    problem = placement_problem((limit_of(env(["g4dn"])),), 4, 1024, gpus=16)
    assert "at most 8 GPUs" in problem


@pytest.mark.parametrize(
    "limits",
    [
        (),  # nothing known
        (limit_of(env(["z9q"])),),  # unknown family: only maxvCpus, which fits
        (limit_of({**env(["c5"]), "type": "UNMANAGED"}),),
        (ComputeLimit("small", 4, instance_size("c5.large")), limit_of(env(["c5"]))),
    ],
)
def test_fits_somewhere_or_not_judged(limits):
    assert placement_problem(limits, 16, 8192) is None


def test_multinode_total_and_asked_instance_type():
    limits = (limit_of(env(["c5n"], max_vcpus=64)),)
    assert "at most 64 vCPUs" in placement_problem(limits, 36, 1024, nodes=2)
    small = instance_size("c5n.large")
    assert "c5n.large" in placement_problem(limits, 8, 1024, nodes=2, instance=small)
