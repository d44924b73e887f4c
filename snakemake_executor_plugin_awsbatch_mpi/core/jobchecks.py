"""Whole-DAG refusals of jobs that could only fail or hang inside Batch.

Run over every job before the first submission, so that a workflow that cannot work on Batch
costs nothing: no upstream job runs (and is paid for) before the problem shows. The core takes
plain data (target jobs, `pipe()` outputs); `snakemake_jobs` reads them from Snakemake's jobs.
"""

from __future__ import annotations

from collections.abc import Iterable

from .command import TargetJob, wildcard_problems


def pipe_problem(rule: str, output: str) -> str:
    """Why a `pipe()` output cannot run on Batch, and what to write instead."""
    return (
        f"Rule '{rule}' writes its output '{output}' with pipe(). Inside a Batch job every "
        "output goes to the default storage, and Snakemake would wait forever to upload the "
        "named pipe, so the job would hang. Write a regular file instead: replace pipe() by "
        "temp() (give the reading rule the same group: to run both in one Batch job)."
    )


def refusals(targets: Iterable[TargetJob], pipe_outputs: Iterable[tuple[str, str]]) -> list[str]:
    """Every reason the jobs of this run cannot run on Batch (empty when they can).

    `targets`: every target job of the run; `pipe_outputs`: (rule, output as written) of the
    `pipe()` outputs that would go to storage. One sentence per rule and kind, in DAG order.
    """
    pipes: dict[str, str] = {}
    for rule, output in pipe_outputs:
        pipes.setdefault(rule, pipe_problem(rule, output))
    return [
        f"{p} Rename the files, or use other wildcards." for p in wildcard_problems(targets)
    ] + list(pipes.values())
