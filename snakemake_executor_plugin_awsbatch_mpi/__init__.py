"""Snakemake executor plugin for AWS Batch, with multi-node MPI jobs.

Snakemake discovers the plugin by its module name and reads `ExecutorSettings`,
`common_settings` and `Executor` from here. They are imported lazily (PEP 562) so that the
node agent (`python -m snakemake_executor_plugin_awsbatch_mpi.mpi`) and the array runner
start without importing Snakemake or boto3.
"""

from typing import Any

__all__ = ["Executor", "ExecutorSettings", "common_settings"]


def __getattr__(name: str) -> Any:
    if name == "Executor":
        from .executor import Executor

        return Executor
    if name in ("ExecutorSettings", "common_settings"):
        from . import settings

        return getattr(settings, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
