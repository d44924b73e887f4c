import pytest

from snakemake_executor_plugin_awsbatch_mpi.core.request import JobRequest
from snakemake_executor_plugin_awsbatch_mpi.core.spec import ResourceError


def req(threads=1, **resources):
    return JobRequest(rule="r", threads=threads, resources=resources)


def test_gpu_mpi_runs_one_rank_per_gpu_across_nodes():
    from snakemake_executor_plugin_awsbatch_mpi.core.multinode import mpi_layout_of

    layout = mpi_layout_of(req(threads=8, mpi="mpirun", tasks=8, gpu=4))
    assert (layout.nodes, layout.tasks_per_node, layout.slots_per_node) == (2, 4, 4)
    with pytest.raises(ResourceError, match="multiple of gpu=4"):
        mpi_layout_of(req(mpi="mpirun", tasks=6, gpu=4))
    # an explicit layout still wins
    layout = mpi_layout_of(req(mpi="mpirun", tasks=8, nodes=4, gpu=4))
    assert (layout.nodes, layout.tasks_per_node, layout.slots_per_node) == (4, 2, 4)
