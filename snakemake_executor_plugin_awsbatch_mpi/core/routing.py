"""Which job queue a job goes to, from its resources and the executor's queue settings."""

from __future__ import annotations

from .multinode import mpi_layout_of
from .request import JobRequest, TranslationSettings
from .sizes import gpus_of
from .spec import ResourceError
from .values import given


def resolve_queue(request: JobRequest, settings: TranslationSettings) -> str:
    """Pick the job queue: explicit rule queue > GPU model map > GPU queue > default queue."""
    res = request.resources
    rule = request.rule
    if given(res, "awsbatch_queue"):
        return str(res["awsbatch_queue"])
    if mpi_layout_of(request) is not None:
        if not settings.multinode_job_queue:
            raise ResourceError(
                rule,
                "mpi",
                res.get("mpi"),
                "multi-node MPI jobs need a queue: set --awsbatch-mpi-multinode-job-queue "
                "(an EC2 on-demand queue) or resources: awsbatch_queue='<queue>'.",
            )
        return settings.multinode_job_queue
    manufacturer = res.get("gpu_manufacturer")
    if manufacturer not in (None, "") and str(manufacturer).lower() != "nvidia":
        raise ResourceError(
            rule,
            "gpu_manufacturer",
            manufacturer,
            "AWS Batch schedules only NVIDIA GPUs; use gpu_manufacturer='nvidia' or route the "
            "rule to a queue of your own with resources: awsbatch_queue='<queue>'.",
        )
    model = res.get("gpu_model")
    if model not in (None, ""):
        queue = settings.gpu_queues.get(str(model)) or settings.gpu_queues.get(str(model).lower())
        if queue is None:
            known = ", ".join(sorted(settings.gpu_queues)) or "none"
            raise ResourceError(
                rule,
                "gpu_model",
                model,
                f"no queue is mapped to this GPU model (mapped: {known}). Map it with "
                f"--awsbatch-mpi-gpu-queues {model}=<queue>, or set resources: "
                "awsbatch_queue='<queue>' on the rule.",
            )
        return queue
    if gpus_of(request) > 0 and settings.gpu_job_queue:
        return settings.gpu_job_queue
    return settings.job_queue
