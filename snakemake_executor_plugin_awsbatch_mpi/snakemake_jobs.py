"""The Snakemake side of the translation: Snakemake's job, rule and executor objects read into
the plain data the core takes (`JobRequest`, the resources as written, `JobArgs`, target jobs,
`pipe()` outputs), and the job command built around Snakemake's own.

Why a module of its own: `core/` knows no Snakemake object, so that it can be tested with plain
values and cannot break when Snakemake renames an attribute. Everything that reads a Snakemake
object for the translation is here, next to the executor (its user, with `awsbatch-mpi plan`);
what the plugin may read of Snakemake's undocumented internals is listed and checked in
`snakemake_internals`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from snakemake.io import is_flagged
from snakemake_interface_common.exceptions import WorkflowError
from snakemake_interface_executor_plugins.executors.real import RealExecutor
from snakemake_interface_executor_plugins.settings import SharedFSUsage
from snakemake_interface_executor_plugins.utils import format_cli_arg

from .core.anyimage import mixed_images_problem
from .core.command import (
    SHELL,
    JobArgs,
    TargetJob,
    one_interpreter,
    render_job_args,
    render_list_arg,
    swap_job_args,
    wildcard_problem,
)
from .core.jobchecks import refusals
from .core.request import JobRequest
from .snakemake_internals import (
    container_image,
    declared_resource_names,
    declared_resources,
    group_name,
)


def written_resources(rule: Any) -> dict[str, object]:
    """The rule's `resources:` as written in the Snakefile (plain values; callables left out).

    Snakemake rounds floats (gpu=1.5 becomes 2) and derives mem_mib from mem_mb before the
    plugin sees them; errors must name what the user wrote (`snakemake_internals`).
    """
    values = declared_resources(rule)
    if not values:
        return {}
    # --set-resources replaces what the Snakefile says (mem_mb there also replaces mem_mib).
    settings = getattr(getattr(rule, "workflow", None), "resource_settings", None)
    overwritten = (getattr(settings, "overwrite_resources", None) or {}).get(
        getattr(rule, "name", None)
    ) or {}
    replaced = {_base(name) for name in overwritten.keys()}
    return {
        k: v
        for k, v in values.items()
        if isinstance(v, int | float | str) and _base(k) not in replaced
    }


def _base(name: str) -> str:
    return name.removesuffix("_mib").removesuffix("_mb")


def job_request(job: Any, evaluated: Any = None) -> JobRequest:
    """Snakemake job (single or group) → the plain request the pure core understands.

    `evaluated`: the job's resources evaluated without caching them on the job (the
    whole-DAG check), instead of `job.resources`.
    """
    resources = dict((job.resources if evaluated is None else evaluated).items())
    if job.is_group():
        return JobRequest(
            rule=job.name,
            threads=int(resources.get("_cores", 1)),
            resources=resources,
            is_group=True,
            container=group_container(job),
            # A group's sizes add up its jobs': a disk counts when every rule gave one.
            declared=frozenset.intersection(
                *(declared_resource_names(member.rule) for member in job.jobs)
            ),
        )
    return JobRequest(
        rule=job.rule.name,
        threads=job.threads if evaluated is None else int(resources.get("_cores", 1)),
        resources=resources,
        wildcards=dict(job.wildcards.items()) if job.wildcards else {},
        written=written_resources(job.rule),
        container=container_image(job),
        declared=declared_resource_names(job.rule),
    )


def group_container(job: Any) -> str | None:
    """The one image the rules of a group job name: a group runs in one container."""
    images = {image for single in job.jobs if (image := container_image(single))}
    if len(images) > 1:
        raise WorkflowError(mixed_images_problem(job.name, images))
    return images.pop() if images else None


def mixed_group_images(jobs: Iterable[Any]) -> list[str]:
    """`mixed_images_problem` for every group whose rules name different images, over the
    single jobs of the DAG (before scheduling, groups are not formed yet)."""
    by_group: dict[str, set[str]] = {}
    for job in jobs:
        for single in job.jobs if job.is_group() else [job]:
            group = group_name(single)
            image = container_image(single)
            if group and image:
                by_group.setdefault(group, set()).add(image)
    return [mixed_images_problem(g, images) for g, images in sorted(by_group.items())
            if len(images) > 1]


def targets_of(job: Any) -> tuple[TargetJob, ...]:
    """The target jobs of a Snakemake job or group job, as `--target-jobs` names them."""
    return tuple(
        TargetJob(spec.rulename, tuple((str(k), str(v)) for k, v in spec.wildcards_dict.items()))
        for spec in job.get_target_spec()
    )


def _strings(values: Iterable[object]) -> tuple[str, ...]:
    return tuple(str(value) for value in values)


def job_args_of(executor: Any, job: Any, cores: int) -> JobArgs:
    """Read a Snakemake job into `JobArgs` (what `core.command` renders safely)."""
    return JobArgs(
        targets=targets_of(job),
        rules=_strings(job.rules),
        cores=cores,
        attempt=int(job.attempt),
        group_id=str(job.jobid) if job.is_group() else None,
        unneeded_temp_files=_strings(executor.workflow.dag.get_unneeded_temp_files(job)),
    )


def swap_list_arg(command: str, flag: str, values: Iterable[object]) -> str:
    """`command` with Snakemake's own rendering of `flag values...` quoted safely instead.

    Snakemake renders such lists with `format_cli_arg`, i.e. `repr()` per value; the text it
    produced must occur exactly once (else guessing would be unsafe, see `swap_job_args`).
    """
    values = list(values)
    theirs = format_cli_arg(flag, values)
    if not theirs:
        return command
    return swap_job_args(command, f" {theirs}", f" {render_list_arg(flag, values)}")


def config_args_of(executor: Any) -> list[tuple[str, list[str]]]:
    """The user-supplied list arguments Snakemake passes on to every job: `--config` items
    and `--configfiles` paths, as `format_job_exec` renders them."""
    workflow = executor.workflow
    settings = getattr(workflow, "config_settings", None)
    config = [str(item) for item in (getattr(settings, "config_args", None) or [])]
    files = [str(path) for path in (getattr(workflow, "overwrite_configfiles", None) or [])]
    if files and SharedFSUsage.SOURCES not in workflow.storage_settings.shared_fs_usage:
        # As Snakemake's get_configfiles_arg: deployed sources hold them at relative paths.
        files = [os.path.relpath(path) for path in files]
    return [("--config", config), ("--configfiles", files)]


def job_command(executor: Any, job: Any, cores: int) -> tuple[str, ...]:
    """The container command of `job`: Snakemake's command, safe for `bash -c`, with `cores`.

    Single, group, array (the command map holds the last element) and MPI jobs (the node agent
    gets the last element) all use this one command (see `core.command` for why it is rebuilt).
    """
    args = job_args_of(executor, job, cores)
    for target in args.targets:  # jobs added after a checkpoint were not vetted up front
        problem = wildcard_problem(target)
        if problem:
            raise WorkflowError(f"{problem} Rename the files, or use other wildcards.")
    command = executor.format_job_exec(job)
    for flag, values in config_args_of(executor):
        command = swap_list_arg(command, flag, values)
    snakemake_args = RealExecutor.get_job_args(executor, job)
    safe = render_job_args(args)
    return (*SHELL, one_interpreter(swap_job_args(command, snakemake_args, safe)))


def as_written(rule: Any, pattern: Any) -> str:
    """An output pattern as the Snakefile has it, not its local copy of the storage object."""
    if not is_flagged(pattern, "storage_object"):
        return str(pattern)
    query = str(pattern.storage_object.query)
    prefix = str(rule.workflow.storage_settings.default_storage_prefix or "").rstrip("/")
    return query[len(prefix) + 1 :] if prefix and query.startswith(prefix + "/") else query


def pipe_outputs(jobs: Iterable[Any]) -> list[tuple[str, str]]:
    """(rule, output as written) of the first `pipe()` output of each rule, in DAG order.

    A `pipe(local(...))` is left alone: Snakemake runs every job with a local() file on the
    submitting machine, never on Batch.
    """
    found: dict[str, str] = {}
    for job in jobs:
        for single in job.jobs if job.is_group() else [job]:
            rule = single.rule
            if rule.name in found:
                continue
            for pattern in rule.output:
                if is_flagged(pattern, "pipe") and not is_flagged(pattern, "local"):
                    found[rule.name] = as_written(rule, pattern)
                    break
    return list(found.items())


def refusals_of(jobs: Iterable[Any]) -> list[str]:
    """Every reason the Snakemake jobs of this run cannot run on Batch (`core.jobchecks`)."""
    jobs = list(jobs)
    targets = [target for job in jobs for target in targets_of(job)]
    return refusals(targets, pipe_outputs(jobs))


def local_file_notices(jobs: Iterable[Any], workflow: Any) -> list[str]:
    """One warning per rule whose jobs Snakemake runs on this machine because of a local()
    file, naming the file: such jobs never reach this executor, so without it they would
    run here silently (an MPI rule then runs mpirun on this machine alone). Rules the
    Snakefile itself declares local (``localrules``) are left alone: that is a choice.
    """
    notices: dict[str, str] = {}
    for job in jobs:
        for single in job.jobs if job.is_group() else [job]:
            rule = single.rule
            if rule.name in notices or not single.is_local or workflow.is_local(rule):
                continue
            found = [("input", f) for f in single.input if is_flagged(f, "local")]
            found += [("output", f) for f in single.output if is_flagged(f, "local")]
            if not found:
                continue
            kind, path = found[0]
            more = f" (and {len(found) - 1} more local() file(s))" if len(found) > 1 else ""
            mpi = (
                " As an MPI rule, its mpirun then starts ranks on this machine only."
                if "mpi" in (declared_resources(rule) or {})
                else ""
            )
            notices[rule.name] = (
                f"Rule '{rule.name}' has the local() {kind} '{path}'{more}: Snakemake runs its "
                f"jobs on this machine, not on AWS Batch.{mpi} Remove local() to run it on "
                "Batch (the file then goes through the default storage), or list the rule in "
                "localrules to say it belongs here."
            )
    return list(notices.values())
