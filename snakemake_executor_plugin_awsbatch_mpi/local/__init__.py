"""Local AWS emulation: a moto server plus local processes standing in for containers.

``from snakemake_executor_plugin_awsbatch_mpi.local import LOCAL_QUEUES`` works without the
optional ``local`` extra; moto is only imported when an emulation starts.
"""

from ._common import (
    ALL_LOCAL_QUEUES,
    JOB_ROLE_ACCESS_KEY_ID,
    JOB_ROLE_SECRET_ACCESS_KEY,
    LOCAL_BUCKET,
    LOCAL_FARGATE_QUEUE,
    LOCAL_QUEUES,
    NODE_ADDRESS_ENV,
    EmulationError,
)
from .emulation import LocalEmulation

__all__ = [
    "ALL_LOCAL_QUEUES",
    "EmulationError",
    "JOB_ROLE_ACCESS_KEY_ID",
    "JOB_ROLE_SECRET_ACCESS_KEY",
    "LOCAL_BUCKET",
    "LOCAL_FARGATE_QUEUE",
    "LOCAL_QUEUES",
    "LocalEmulation",
    "NODE_ADDRESS_ENV",
    "describe_environment",
    "serve_forever",
]


def __getattr__(name: str) -> object:
    # server.py is tiny, but keep the package import free of signal handling code paths.
    if name in ("describe_environment", "serve_forever"):
        from . import server

        return getattr(server, name)
    raise AttributeError(name)
