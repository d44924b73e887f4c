import pytest

from snakemake_executor_plugin_awsbatch_mpi.core.request import JobRequest, TranslationSettings
from snakemake_executor_plugin_awsbatch_mpi.core.routing import resolve_queue
from snakemake_executor_plugin_awsbatch_mpi.core.spec import ResourceError

SETTINGS = TranslationSettings(
    job_queue="cpu",
    default_image="snakemake/snakemake:v9.27.1",
    gpu_job_queue="gpu",
    gpu_queues={"a100": "gpu-a100"},
)


def req(threads=1, **resources):
    return JobRequest(rule="r", threads=threads, resources=resources)


def test_gpu_routing():
    assert resolve_queue(req(gpu=1), SETTINGS) == "gpu"
    assert resolve_queue(req(nvidia_gpu=2), SETTINGS) == "gpu"
    assert resolve_queue(req(gpu=0), SETTINGS) == "cpu"
    assert resolve_queue(req(gpu=1, gpu_model="a100"), SETTINGS) == "gpu-a100"
    assert resolve_queue(req(gpu=1, awsbatch_queue="mine"), SETTINGS) == "mine"
    with pytest.raises(ResourceError, match="gpu_model.*--awsbatch-mpi-gpu-queues h100="):
        resolve_queue(req(gpu=1, gpu_model="h100"), SETTINGS)
    with pytest.raises(ResourceError, match="gpu_manufacturer.*NVIDIA"):
        resolve_queue(req(gpu=1, gpu_manufacturer="amd"), SETTINGS)
    no_gpu_queue = TranslationSettings(job_queue="cpu", default_image="i")
    assert resolve_queue(req(gpu=1), no_gpu_queue) == "cpu"
