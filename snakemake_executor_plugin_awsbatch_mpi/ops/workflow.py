"""Read a Snakefile's jobs with Snakemake's own API, without running anything or calling AWS.

`awsbatch-mpi plan` and `doctor --snakefile` need every job of the DAG with its rule,
wildcards, threads, evaluated resources and the jobs producing its inputs. Snakemake's
command-line parser reads the arguments (profiles, `--config`, `--set-resources`,
`--default-resources` and the plugin's `--awsbatch-mpi-*` settings, exactly as `snakemake`
would), and the DAG is built the way `snakemake --printdag` builds it, with every job
forced (the plan does not depend on which files exist locally).

The workflow is loaded in Snakemake's *remote* mode, as inside a Batch job: inputs that no
rule produces need not exist here (they usually live in S3), and Snakemake's bookkeeping
goes to a temporary directory instead of the workflow's `.snakemake/`.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core import request
from ..core.anyimage import mixed_images_problem
from ..core.naming import job_name
from ..core.request import TranslationSettings

PLUGIN_NAME = "awsbatch-mpi"
# Resources Snakemake adds that mean nothing to Batch, or repeat another one as text.
_DROPPED_RESOURCES = {"tmpdir", "_nodes", "mem", "disk"}
# A resource computed from the sizes of input files that do not exist yet.
AT_RUN_TIME = "<evaluated at run time>"


class WorkflowLoadError(RuntimeError):
    """The Snakefile or the arguments could not be read; the message says why."""


@dataclass(frozen=True)
class WorkflowJob:
    """One job of the DAG, as plain data."""

    key: str  # unique within the plan: the Batch job name, made unique
    rule: str
    wildcards: Mapping[str, str]
    threads: int
    resources: Mapping[str, Any]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    upstream: tuple[str, ...] = ()  # keys of the jobs producing this job's inputs
    local: bool = False  # runs on the submitting machine (localrules), not on Batch
    is_group: bool = False
    checkpoint: bool = False
    # The rule's resources as written in the Snakefile (see snakemake_jobs.written_resources).
    written: Mapping[str, Any] = field(default_factory=dict)
    # The images the container: directives of the job's rules name (one, or none).
    containers: tuple[str, ...] = ()

    @property
    def container(self) -> str | None:
        """The image of the job's container: directive (`_load` refuses groups with more)."""
        return self.containers[0] if len(self.containers) == 1 else None
    # The names of the resources the user gave (JobRequest.declared).
    declared: frozenset[str] = frozenset()


def split_resources(job: WorkflowJob) -> tuple[dict[str, Any], list[str]]:
    """(resources known now, names of those evaluated only at run time from input sizes)."""
    known = {k: v for k, v in job.resources.items() if v != AT_RUN_TIME}
    return known, sorted(k for k, v in job.resources.items() if v == AT_RUN_TIME)


@dataclass(frozen=True)
class LoadedWorkflow:
    name: str
    jobs: tuple[WorkflowJob, ...]
    envvars: tuple[str, ...] = ()
    source_files: tuple[str, ...] = ()
    # --software-deployment-method apptainer: Snakemake runs the rules' containers itself.
    snakemake_runs_containers: bool = False
    # Workflow-wide refusals (pipes, wildcard values Snakemake cannot carry): the executor's.
    refusals: tuple[str, ...] = ()


def parse_arguments(argv: Sequence[str]) -> argparse.Namespace:
    """Snakemake's own parser (with profiles); errors become `WorkflowLoadError`."""
    from snakemake.cli import parse_args

    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            _, args = parse_args(list(argv))
    except SystemExit:
        detail = stderr.getvalue().strip().splitlines()
        raise WorkflowLoadError(
            "Snakemake could not read these arguments: "
            + (detail[-1] if detail else " ".join(argv))
        ) from None
    except Exception as err:  # noqa: BLE001 - Snakemake raises many kinds
        raise WorkflowLoadError(f"Snakemake could not read the arguments: {err}") from None
    return args


def executor_settings(args: argparse.Namespace) -> Any:
    """The plugin's `ExecutorSettings` from flags, profile and SNAKEMAKE_AWSBATCH_MPI_* vars."""
    from snakemake_interface_common.exceptions import WorkflowError
    from snakemake_interface_executor_plugins.registry import ExecutorPluginRegistry

    from ..settings import SettingsError, check_settings

    plugin = ExecutorPluginRegistry().get_plugin(PLUGIN_NAME)
    try:
        # A malformed mapping flag (tags, volumes, ...) fails inside get_settings.
        settings = plugin.get_settings(args)
        check_settings(settings)
    except (SettingsError, WorkflowError) as err:
        raise WorkflowLoadError(str(err).replace(" Nothing was submitted.", "")) from None
    return settings


def translation_settings(settings: Any, container_image: str) -> TranslationSettings:
    """The same `TranslationSettings` the executor builds from its settings."""
    if not getattr(settings, "job_queue", None):
        raise WorkflowLoadError(
            "No job queue is set: pass --job-queue QUEUE (or --awsbatch-mpi-job-queue), set "
            "awsbatch-mpi-job-queue in the profile, or SNAKEMAKE_AWSBATCH_MPI_JOB_QUEUE."
        )
    return request.translation_settings(settings, container_image)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Snakemake logs to stderr while it builds the DAG; keep the command's output clean."""
    sink = io.StringIO()
    with contextlib.redirect_stderr(sink):
        yield


def _plain_resources(resources: Any) -> dict[str, Any]:
    plain = {}
    for name, value in resources.items():
        if name in _DROPPED_RESOURCES or value is None:
            continue
        if type(value).__name__ == "TBDString":
            value = AT_RUN_TIME
        plain[name] = value
    return plain


def load_workflow(args: argparse.Namespace) -> LoadedWorkflow:
    """Build the DAG of `args.snakefile` and return its jobs as plain data."""
    try:
        with _quiet():
            return _load(args)
    except WorkflowLoadError:
        raise
    except Exception as err:  # noqa: BLE001 - Snakefile errors come in many kinds
        text = str(err).strip() or type(err).__name__
        raise WorkflowLoadError(f"Snakemake could not build the workflow's jobs: {text}") from None


def _load(args: argparse.Namespace) -> LoadedWorkflow:
    from snakemake.api import SnakemakeApi, resolve_snakefile
    from snakemake.cli import parse_config
    from snakemake.settings.types import (
        ConfigSettings,
        DAGSettings,
        ExecutionSettings,
        GroupSettings,
        OutputSettings,
        Quietness,
        ResourceSettings,
        StorageSettings,
        WorkflowSettings,
    )
    from snakemake_interface_executor_plugins.registry import ExecutorPluginRegistry
    from snakemake_interface_executor_plugins.settings import ExecMode

    from .. import snakemake_internals as internals
    from ..snakemake_jobs import refusals_of

    try:
        internals.check_plan()
    except internals.SnakemakeInternalsError as err:
        raise WorkflowLoadError(str(err)) from None
    snakefile = resolve_snakefile(args.snakefile, allow_missing=True)
    if snakefile is None:
        raise WorkflowLoadError(
            "No Snakefile found: pass --snakefile PATH (or run in the workflow's directory)."
        )
    workdir = Path(args.directory) if args.directory else None
    name = (workdir or Path.cwd()).resolve().name or "workflow"
    output = OutputSettings(
        dryrun=True,  # no log file under .snakemake/log
        quiet={Quietness.ALL},
    )
    with SnakemakeApi(output) as api:
        workflow_api = api.workflow(
            resource_settings=ResourceSettings(
                cores=args.cores,
                nodes=args.jobs if isinstance(args.jobs, int) else sys.maxsize,
                local_cores=args.local_cores,
                max_threads=args.max_threads,
                resources=args.resources,
                overwrite_threads=args.set_threads,
                overwrite_scatter=args.set_scatter,
                overwrite_resource_scopes=args.set_resource_scopes,
                overwrite_resources=args.set_resources,
                default_resources=args.default_resources,
            ),
            config_settings=ConfigSettings(
                config=parse_config(args.config),
                configfiles=args.configfile,
                config_args=args.config,
                replace_workflow_config=args.replace_workflow_config,
            ),
            # No storage provider (no S3 calls) and no shared file system: Snakemake keeps
            # its bookkeeping in a temporary directory.
            storage_settings=StorageSettings(shared_fs_usage=frozenset()),
            workflow_settings=WorkflowSettings(exec_mode=ExecMode.REMOTE),
            snakefile=snakefile,
            workdir=workdir,
        )
        # As WorkflowApi._workflow, but without requiring the values of the variables named
        # by `envvars:` (the plan shows placeholders for them, and needs no secrets).
        store = workflow_api._get_workflow(
            check_envvars=False,
            group_settings=GroupSettings(
                overwrite_groups=args.groups,
                group_components=args.group_components,
                local_groupid=args.local_groupid,
            ),
        )
        try:
            internals.check_plan(store)
        except internals.SnakemakeInternalsError as err:
            raise WorkflowLoadError(str(err)) from None
        workflow_api._workflow_store = store
        store.include(
            workflow_api.snakefile, overwrite_default_target=True, print_compilation=False
        )
        store.check()
        # As under `snakemake --executor awsbatch-mpi`: groups are formed, and only
        # localrules (and jobs with local files) count as local.
        store._executor_plugin = ExecutorPluginRegistry().get_plugin(PLUGIN_NAME)
        store.execution_settings = ExecutionSettings()  # group jobs read the attempt
        dag_api = workflow_api.dag(
            DAGSettings(
                targets=set(args.targets or ()),
                forceall=True,
                allowed_rules=set(args.allowed_rules or ()),
            )
        )
        workflow = dag_api.workflow_api._workflow
        # As Workflow.printdag(): the DAG without locking or executing anything.
        workflow._prepare_dag(
            forceall=True, ignore_incomplete=True, lock_warn_only=True, nolock=True
        )
        workflow._build_dag()
        workflow.dag.update_groups()  # as Workflow.execute() does before scheduling
        jobs = _jobs_of(workflow, workflow.dag)
        refused = tuple(refusals_of(workflow.dag.jobs)) + tuple(
            mixed_images_problem(job.rule, job.containers)
            for job in jobs
            if len(job.containers) > 1
        )
        envvars = tuple(sorted(set(workflow.envvars) | set(getattr(args, "envvars", None) or ())))
    produced = {out for job in jobs for out in job.outputs}
    sources = sorted({f for job in jobs for f in job.inputs if f not in produced})
    return LoadedWorkflow(
        name=name,
        jobs=tuple(jobs),
        envvars=envvars,
        source_files=tuple(sources),
        refusals=refused,
        snakemake_runs_containers="apptainer"
        in {str(m).lower() for m in getattr(args, "software_deployment_method", None) or ()},
    )


def _containers_of(members: Sequence[Any]) -> tuple[str, ...]:
    """The distinct images the members' container: directives name."""
    from ..snakemake_internals import container_image

    return tuple(sorted({image for m in members if (image := container_image(m))}))


def _jobs_of(workflow: Any, dag: Any) -> list[WorkflowJob]:
    """Jobs (group jobs as one) in topological levels, each level sorted by name."""
    from ..snakemake_internals import declared_resource_names
    from ..snakemake_jobs import written_resources

    keys: dict[Any, str] = {}
    used: set[str] = set()
    records: list[tuple[Any, list[Any]]] = []  # (unit, members)
    seen_groups: set[int] = set()
    for batch in dag.toposorted():
        units = []
        for job in batch:
            group = dag.get_job_group(job)
            if group is not None:
                if id(group) in seen_groups:
                    continue
                seen_groups.add(id(group))
                units.append((group, sorted(group.jobs, key=_job_sort_key)))
            else:
                units.append((job, [job]))
        units.sort(key=lambda unit: (_unit_name(unit[0]), _outputs_key(unit[1])))
        for unit, members in units:
            base = _unit_name(unit)
            key, n = base, 1
            while key in used:
                n += 1
                key = f"{base}-{n}"
            used.add(key)
            for member in members:
                keys[member] = key
            records.append((unit, members))

    jobs = []
    for unit, members in records:
        key = keys[members[0]]
        upstream: list[str] = []
        for member in members:
            for dep in sorted(dag.dependencies[member], key=_job_sort_key):
                dep_key = keys.get(dep)
                if dep_key and dep_key != key and dep_key not in upstream:
                    upstream.append(dep_key)
        is_group = len(members) > 1 or dag.get_job_group(members[0]) is not None
        if is_group:
            resources = _plain_resources(unit.resources)
            threads = int(resources.get("_cores", 1))
            rule = unit.name
            wildcards: dict[str, str] = {}
        else:
            job = members[0]
            resources = _plain_resources(job.resources)
            threads = int(job.threads)
            rule = job.rule.name
            wildcards = {k: str(v) for k, v in job.wildcards.items()} if job.wildcards else {}
        jobs.append(
            WorkflowJob(
                key=key,
                rule=rule,
                wildcards=wildcards,
                threads=threads,
                resources=resources,
                inputs=tuple(sorted({str(f) for m in members for f in m.input})),
                outputs=tuple(sorted({str(f) for m in members for f in m.output})),
                upstream=tuple(upstream),
                local=not is_group and bool(members[0].is_local),
                is_group=is_group,
                checkpoint=any(m.is_checkpoint for m in members),
                written={} if is_group else written_resources(members[0].rule),
                containers=_containers_of(members),
                # A group's sizes add up its jobs': a disk counts when every rule gave one.
                declared=frozenset.intersection(
                    *(declared_resource_names(m.rule) for m in members)
                ),
            )
        )
    return jobs


def _job_sort_key(job: Any) -> tuple[str, tuple[str, ...]]:
    name = job_name(job.rule.name, dict(job.wildcards.items()) if job.wildcards else {})
    return name, tuple(sorted(str(f) for f in job.output))


def _outputs_key(members: Sequence[Any]) -> tuple[str, ...]:
    return tuple(sorted(str(f) for m in members for f in m.output))


def _unit_name(unit: Any) -> str:
    if hasattr(unit, "jobs") and hasattr(unit, "groupid"):
        return job_name(unit.name, {})
    return _job_sort_key(unit)[0]
