"""Snakemake executor plugin for AWS Batch, with multi-node MPI jobs.

Snakemake discovers the plugin by its module name and reads `ExecutorSettings`,
`common_settings` and `Executor` from here.
"""

from .executor import Executor
from .settings import ExecutorSettings, common_settings

__all__ = ["Executor", "ExecutorSettings", "common_settings"]
