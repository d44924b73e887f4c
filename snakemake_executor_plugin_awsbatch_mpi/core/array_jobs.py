"""Same-rule jobs that become ready together go to Batch as one array job.

Children pick their own Snakemake command by `AWS_BATCH_JOB_ARRAY_INDEX` from a command map
kept in S3 next to the workflow's files (SubmitJob payloads are capped at 30 KiB, far too
small for hundreds of commands). Only jobs whose requests are identical apart from command
and name are grouped, so every child runs exactly as it would have on its own.

This is the submitting side (pure); `array.py` is what each child runs in its container.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
from collections.abc import Iterable, Sequence
from typing import TypeVar

from .anyimage import runtime_agent_command
from .command import SHELL
from .spec import JobSpec

MIN_ARRAY = 2
MAX_ARRAY = 10_000
# The child's entry point (array.py). Its module path is part of what a Batch job runs, so it
# keeps its name: images built from an earlier release run the same command.
ARRAY_MODULE = "snakemake_executor_plugin_awsbatch_mpi.array"
ARRAY_RUNNER = f"exec python -m {ARRAY_MODULE}"

T = TypeVar("T")


def array_key(spec: JobSpec) -> JobSpec:
    """The parts of a spec that must be equal for jobs to share one array job."""
    return dataclasses.replace(spec, name="", command=())


def selected(rule: str, setting: Sequence[str] | None) -> bool:
    if not setting:
        return False
    return "all" in setting or rule in setting


def group_for_arrays(
    items: Iterable[tuple[T, JobSpec]], setting: Sequence[str] | None
) -> tuple[list[list[tuple[T, JobSpec]]], list[tuple[T, JobSpec]]]:
    """Split (job, spec) pairs into array groups (2..10,000 jobs) and single jobs."""
    groups: dict[JobSpec, list[tuple[T, JobSpec]]] = {}
    singles: list[tuple[T, JobSpec]] = []
    for item in items:
        spec = item[1]
        if spec.mpi is not None or spec.job_definition or not selected(spec.rule, setting):
            singles.append(item)
            continue
        groups.setdefault(array_key(spec), []).append(item)
    arrays: list[list[tuple[T, JobSpec]]] = []
    for members in groups.values():
        for start in range(0, len(members), MAX_ARRAY):
            chunk = members[start : start + MAX_ARRAY]
            if len(chunk) < MIN_ARRAY:
                singles.extend(chunk)
            else:
                arrays.append(chunk)
    return arrays, singles


def command_map(specs: Sequence[JobSpec]) -> bytes:
    """The JSON document children read: index → the bash command of that job.

    Each entry is the job's own command from `command.job_command`, already quoted for bash.
    """
    return json.dumps({str(i): spec.command[-1] for i, spec in enumerate(specs)}).encode()


def array_spec(first: JobSpec, map_url: str, size: int) -> JobSpec:
    """The spec of the array parent: the first member's request running the array runner."""
    return dataclasses.replace(
        first,
        name=f"{first.name[:100]}-x{size}" if first.name else f"array-x{size}",
        # The storage prefix is the user's and may hold any character S3 allows in a key.
        command=_runner(first, map_url),
    )


def _runner(first: JobSpec, map_url: str) -> tuple[str, ...]:
    """The array runner, from the plugin's runtime when the image has no Snakemake."""
    if first.runtime:
        *shell, script = runtime_agent_command(ARRAY_MODULE)
        return (*shell, f"{script} {shlex.quote(map_url)}")
    return (*SHELL, f"{ARRAY_RUNNER} {shlex.quote(map_url)}")
