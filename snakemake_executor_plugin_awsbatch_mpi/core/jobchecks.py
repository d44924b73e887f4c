"""Whole-DAG refusals of jobs that could only fail or hang inside Batch.

Run over every job before the first submission, so that a workflow that cannot work on Batch
costs nothing: no upstream job runs (and is paid for) before the problem shows.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from snakemake.io import is_flagged

from .command import wildcard_problems_of


def pipe_problem(rule: str, output: str) -> str:
    """Why a `pipe()` output cannot run on Batch, and what to write instead."""
    return (
        f"Rule '{rule}' writes its output '{output}' with pipe(). Inside a Batch job every "
        "output goes to the default storage, and Snakemake would wait forever to upload the "
        "named pipe, so the job would hang. Write a regular file instead: replace pipe() by "
        "temp() (give the reading rule the same group: to run both in one Batch job)."
    )


def as_written(rule: Any, pattern: Any) -> str:
    """An output pattern as the Snakefile has it, not its local copy of the storage object."""
    if not is_flagged(pattern, "storage_object"):
        return str(pattern)
    query = str(pattern.storage_object.query)
    prefix = str(rule.workflow.storage_settings.default_storage_prefix or "").rstrip("/")
    return query[len(prefix) + 1 :] if prefix and query.startswith(prefix + "/") else query


def pipe_problems(jobs: Iterable[Any]) -> list[str]:
    """One sentence per rule that writes a `pipe()` into storage, in DAG order.

    A `pipe(local(...))` is left alone: Snakemake runs every job with a local() file on the
    submitting machine, never on Batch.
    """
    problems: dict[str, str] = {}
    for job in jobs:
        for single in job.jobs if job.is_group() else [job]:
            rule = single.rule
            if rule.name in problems:
                continue
            for pattern in rule.output:
                if is_flagged(pattern, "pipe") and not is_flagged(pattern, "local"):
                    problems[rule.name] = pipe_problem(rule.name, as_written(rule, pattern))
                    break
    return list(problems.values())


def refusals(jobs: Iterable[Any]) -> list[str]:
    """Every reason the jobs of this run cannot run on Batch (empty when they can)."""
    jobs = list(jobs)
    return [
        f"{p} Rename the files, or use other wildcards." for p in wildcard_problems_of(jobs)
    ] + pipe_problems(jobs)
