"""Every place the plugin reaches past Snakemake's plugin interface, in one list.

The executor-plugin interface gives jobs one at a time; some features need more of
Snakemake than it offers (the whole DAG before the first submission, a rule's resources as
written, the source archive's fate under --immediate-submit, the offline `plan`). Each such
use is listed in `EXECUTOR` or `PLAN` and reached only through the small accessors below, so
a Snakemake upgrade that renames one fails at start with a message naming the Snakemake
version and the missing piece, instead of a feature silently switching off halfway through.

One use is deliberately left out of the start-up check because losing it costs nothing but
time: `cancel_reevaluation_timers` finds the scheduler's pending re-evaluation timer by its
function's name (`SCHEDULER_TIMER`); if Snakemake renames it, a run again waits up to a
second at its end, as it does without this plugin.

`check` is pure over the objects it is given (unit-tested with fakes); the executor calls
`check_executor` once in `__post_init__`, `ops/workflow.py` calls `check_plan` before it
loads a workflow.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any


@dataclass(frozen=True)
class Internal:
    """One private (or non-interface) attribute of a Snakemake object the plugin uses."""

    owner: str  # which object: "dag", "rule", "workflow", "workflow_api", "iofile"
    name: str
    used_for: str

    def describe(self) -> str:
        return f"{self.owner}.{self.name} (used for {self.used_for})"


EXECUTOR: tuple[Internal, ...] = (
    Internal("dag", "needrun_jobs", "checking every job before the first submission"),
    Internal("rule", "expand_resources", "evaluating a job's resources in that check"),
    Internal("rule", "ruleinfo", "naming resources as the Snakefile writes them"),
    Internal("rule", "expand_container_img", "the image a rule's container: directive names"),
    Internal("rule", "expand_group", "refusing a group whose rules name different images"),
    Internal(
        "workflow", "deployment_settings", "whether Snakemake itself runs the rules' containers"
    ),
    Internal("workflow", "_source_archive", "removing the uploaded sources of a refused run"),
    Internal(
        "workflow", "cleanup_source_archive", "keeping the sources under --immediate-submit"
    ),
    Internal("iofile", "is_storage", "finding a failed job's log: files in storage"),
    Internal("iofile", "storage_object", "reading those log files back"),
)

PLAN: tuple[Internal, ...] = (
    Internal("workflow_api", "_get_workflow", "loading a workflow without its envvars"),
    Internal("workflow_api", "_workflow_store", "handing that workflow to the DAG API"),
    Internal("workflow_api", "_workflow", "reading the workflow back from the DAG API"),
    Internal("workflow", "_prepare_dag", "building the DAG of `plan` without locking"),
    Internal("workflow", "_build_dag", "building the DAG of `plan`"),
    Internal("workflow", "_executor_plugin", "forming groups as under this executor"),
)


class SnakemakeInternalsError(RuntimeError):
    """This Snakemake version lacks something the plugin relies on."""


def snakemake_version() -> str:
    try:
        return metadata.version("snakemake")
    except metadata.PackageNotFoundError:  # pragma: no cover - Snakemake is a dependency
        return "unknown"


def missing(internals: Iterable[Internal], objects: Mapping[str, Any]) -> list[Internal]:
    """The internals absent from the objects given (owners not given are not checked)."""
    return [
        item
        for item in internals
        if item.owner in objects and not hasattr(objects[item.owner], item.name)
    ]


def check(internals: Sequence[Internal], objects: Mapping[str, Any], version: str) -> None:
    """Raise `SnakemakeInternalsError` naming every missing internal and the version."""
    gone = missing(internals, objects)
    if gone:
        raise SnakemakeInternalsError(
            f"Snakemake {version} lacks what the awsbatch-mpi plugin relies on: "
            + "; ".join(item.describe() for item in gone)
            + ". Install a Snakemake version this plugin supports (see its pyproject.toml), "
            "or a plugin release made for this Snakemake version."
        )


def _classes(names: Sequence[str]) -> dict[str, Any]:
    """Snakemake's classes for owners whose instance is not at hand (methods only)."""
    from snakemake.api import WorkflowApi
    from snakemake.dag import DAG
    from snakemake.io import _IOFile
    from snakemake.rules import Rule
    from snakemake.workflow import Workflow

    found = {
        "dag": DAG,
        "rule": Rule,
        "workflow": Workflow,
        "workflow_api": WorkflowApi,
        "iofile": _IOFile,
    }
    return {name: found[name] for name in names}


def check_executor(workflow: Any, dag: Any) -> None:
    """Once at the executor's start, on the run's own workflow, DAG and first rule.

    Without any rule at hand, `expand_resources` is looked up on Snakemake's `Rule` class
    (`ruleinfo` is set on each instance, so it is then left unchecked); a job's files are
    checked on Snakemake's file class (`_IOFile`, whose properties they are).
    """
    rules = list(getattr(workflow, "rules", ()) or ())
    rule = rules[0] if rules else _classes(["rule"])["rule"]
    internals = [i for i in EXECUTOR if rules or i.name != "ruleinfo"]
    objects = {"workflow": workflow, "dag": dag, "rule": rule, **_classes(["iofile"])}
    check(internals, objects, snakemake_version())


def check_plan(workflow: Any | None = None) -> None:
    """For `plan`: the methods on Snakemake's classes, then the loaded workflow's attributes.

    Called before the workflow is loaded (`workflow=None`) and once it exists.
    """
    if workflow is None:
        objects = _classes(["workflow", "workflow_api"])
        internals = [i for i in PLAN if i.name != "_executor_plugin"]
    else:
        objects = {"workflow": workflow}
        internals = [i for i in PLAN if i.owner == "workflow"]
    check(internals, objects, snakemake_version())


# Accessors: the only code that touches the internals listed above ------------------------


def needrun_jobs(dag: Any) -> list[Any]:
    """The jobs Snakemake will run (group jobs as one)."""
    return list(dag.needrun_jobs())


def evaluated_resources(job: Any) -> Any:
    """A single job's resources evaluated afresh, without caching them on the job."""
    return job.rule.expand_resources(
        job.wildcards_dict, job.input, job.attempt, skip_evaluation={"tmpdir"}
    )


def declared_resources(rule: Any) -> Mapping[str, Any] | None:
    """The rule's `resources:` keyword arguments as written, or None when it has none."""
    declared = getattr(getattr(rule, "ruleinfo", None), "resources", None)
    if not declared:
        return None
    _, values = declared
    return values


def storage_urls(files: Iterable[Any]) -> list[str]:
    """The storage queries (`s3://...`) of those files that live in storage.

    A job's `log:` files are Snakemake `_IOFile`s; `is_storage` and `storage_object.query`
    are Snakemake's own (not the executor interface's): listed in `EXECUTOR`, and read
    defensively all the same (a plain path yields no URL).
    """
    urls = []
    for item in files:
        if getattr(item, "is_storage", False):
            query = getattr(getattr(item, "storage_object", None), "query", None)
            if query:
                urls.append(str(query))
    return urls


def container_image(job: Any) -> str | None:
    """The image a single job's `container:` directive (or the workflow's) names, or None."""
    image = job.rule.expand_container_img(job.wildcards_dict)
    return str(image) if image else None


def group_name(job: Any) -> str | None:
    """The group a single job belongs to (its rule's `group:` or --groups), or None."""
    group = job.rule.expand_group(job.wildcards_dict)
    return str(group) if group else None


def snakemake_runs_containers(workflow: Any) -> bool:
    """Whether Snakemake itself runs the rules' containers (apptainer deployment)."""
    from snakemake.settings.types import DeploymentMethod

    methods = getattr(workflow.deployment_settings, "deployment_method", None) or ()
    return DeploymentMethod.APPTAINER in methods
def declared_resource_names(rule: Any) -> frozenset[str]:
    """The resources the user gave a rule: in its `resources:` (callables too) or with
    --set-resources; not the defaults Snakemake gives every job of a cloud run."""
    names = set(declared_resources(rule) or {})
    settings = getattr(getattr(rule, "workflow", None), "resource_settings", None)
    overwritten = (getattr(settings, "overwrite_resources", None) or {}).get(
        getattr(rule, "name", None)
    ) or {}
    return frozenset(names | set(overwritten))


def source_archive_query(workflow: Any) -> str:
    """Where Snakemake uploaded the workflow sources ("" when it did not)."""
    archive = getattr(workflow, "_source_archive", None)
    return str(getattr(archive, "query", "") or "")


def keep_source_archive(workflow: Any) -> None:
    """Stop Snakemake from deleting the uploaded sources when scheduling ends."""
    workflow.cleanup_source_archive = lambda: None


# Snakemake's scheduler re-evaluates every second (its --max-jobs-per-timespan window) through
# a non-daemon `threading.Timer` whose function is a lambda defined here.
SCHEDULER_TIMER = "JobScheduler._schedule_reevalutation."


def cancel_reevaluation_timers() -> int:
    """Cancel the scheduler's pending re-evaluation timers once scheduling has ended.

    Python waits for non-daemon threads at exit, so every finished run otherwise lingers up
    to a second for a timer that only wakes a scheduler loop which has already returned.
    Returns how many were cancelled.
    """
    cancelled = 0
    for thread in threading.enumerate():
        function = getattr(thread, "function", None)
        name = getattr(function, "__qualname__", "")
        if isinstance(thread, threading.Timer) and name.startswith(SCHEDULER_TIMER):
            thread.cancel()
            cancelled += 1
    return cancelled


__all__ = [
    "EXECUTOR",
    "PLAN",
    "SCHEDULER_TIMER",
    "Internal",
    "SnakemakeInternalsError",
    "check",
    "check_executor",
    "cancel_reevaluation_timers",
    "check_plan",
    "container_image",
    "declared_resource_names",
    "declared_resources",
    "evaluated_resources",
    "group_name",
    "keep_source_archive",
    "missing",
    "needrun_jobs",
    "snakemake_runs_containers",
    "snakemake_version",
    "source_archive_query",
    "storage_urls",
]
