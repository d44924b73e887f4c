"""Whether a rule's demand fits the instances of a queue (hand-made shapes, no AWS)."""

from __future__ import annotations

import pytest

from snakemake_executor_plugin_awsbatch_mpi.ops import instance_fit
from snakemake_executor_plugin_awsbatch_mpi.ops.instance_fit import (
    Demand,
    EnvCapacity,
    InstanceShape,
)
from snakemake_executor_plugin_awsbatch_mpi.ops.outcomes import Status

SHAPES = (
    InstanceShape("c5.large", 2, 4096),
    InstanceShape("c5.4xlarge", 16, 32768),
    InstanceShape("g4dn.xlarge", 4, 16384, gpus=1),
)


def capacity(**kw):
    values = {"name": "ce", "kind": "EC2", "max_vcpus": 64, "usable": True, "instances": SHAPES}
    values.update(kw)
    return EnvCapacity(**values)


def test_demand_that_fits_names_the_instance_type():
    result = instance_fit.check_demand(Demand("r", "q", 2, 3000), [capacity()], jobs=3)
    assert result.status is Status.PASS and "c5.large" in result.message
    assert "All 3 jobs" in result.message


@pytest.mark.parametrize(
    ("demand", "word"),
    [
        (Demand("r", "q", 32, 1000), "too few vCPUs"),
        (Demand("r", "q", 2, 64000), "at most 32768 MiB"),
        (Demand("r", "q", 1, 1000, gpus=2), "too few GPUs"),
        (Demand("r", "q", 16, 1000, nodes=8), "at most 64 vCPUs in total"),
    ],
)
def test_demand_that_never_fits_would_sit_runnable(demand, word):
    result = instance_fit.check_demand(demand, [capacity()])
    assert result.status is Status.FAIL
    assert "RUNNABLE forever" in result.message and word in result.message
    assert "rule r" == result.check


def test_demand_filling_an_instance_exactly_is_a_warning():
    result = instance_fit.check_demand(Demand("r", "q", 2, 4096), [capacity()])
    assert result.status is Status.PASS  # c5.4xlarge has room
    tight = instance_fit.check_demand(
        Demand("r", "q", 2, 4096), [capacity(instances=(InstanceShape("c5.large", 2, 4096),))]
    )
    assert tight.status is Status.WARN and "ECS agent" in tight.message


def test_demand_on_fargate_and_unknown_instances():
    fargate = capacity(kind="FARGATE", instances=())
    assert instance_fit.check_demand(Demand("r", "q", 4, 8192), [fargate]).status is Status.PASS
    assert (
        instance_fit.check_demand(Demand("r", "q", 1, 512, gpus=1), [fargate]).status
        is Status.FAIL
    )
    unknown = capacity(instances=(), instances_known=False)
    assert instance_fit.check_demand(Demand("r", "q", 200, 512), [unknown]).status is Status.FAIL
    assert instance_fit.check_demand(Demand("r", "q", 2, 512), [unknown]).status is Status.PASS
    disabled = capacity(usable=False)
    assert instance_fit.check_demand(Demand("r", "q", 1, 512), [disabled]).status is Status.FAIL
    assert instance_fit.check_demand(Demand("r", "q", 1, 512), []).status is Status.FAIL
