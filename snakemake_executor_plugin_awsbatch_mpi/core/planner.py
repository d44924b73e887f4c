"""One submission planner: a job's request → the exact Batch payloads, or a refusal (pure).

The executor plans every job of the DAG with this before the first SubmitJob (and again when
it submits each job, with the job's final command); `awsbatch-mpi plan` renders the same plans
offline. Whatever Batch would refuse, or accept and never run, is refused here, so a bad
downstream rule stops the run before any upstream job is paid for.

Also here, once for both: the run tags, the environment split (what travels in overrides,
what is dropped, which declared secrets have no source) and the run-wide warnings.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .disk import declared_disk, disk_warning
from .disk_guard import guarded_command
from .environment import filter_environment
from .fallback import FALLBACK_TAG, check_fallback_queue
from .jobdef import register_payload, submit_payload
from .naming import job_name
from .request import JobRequest, TranslationSettings
from .resources import translate
from .spec import JobSpec, Platform, QueueInfo
from .tags import safe_tag_value
from .validation import MAX_SUBMIT_BYTES, Validator

# What a dependsOn list of 20 job ids adds to a SubmitJob payload (checked with room for it).
DEPENDS_ON_ROOM = 20 * len('{"jobId": "01234567-89ab-cdef-0123-456789abcdef"}, ')
# The ARN the executor puts in jobDefinition is longer than the name the plan shows.
_ARN_PREFIX = "arn:aws:batch:ap-southeast-2:123456789012:job-definition/"


class PlanError(ValueError):
    """A job's requests would break a Batch limit; the message says what to do instead."""


def run_tags(run_id: str, rule: str, workflow: str) -> dict[str, str]:
    """The tags every job of a run carries (`awsbatch-mpi status --run` finds jobs by them)."""
    return {
        "snakemake-run-id": run_id,
        "snakemake-rule": safe_tag_value(rule),
        "snakemake-workflow": safe_tag_value(workflow) or "workflow",
    }


@dataclass(frozen=True)
class Environment:
    """The submitting environment, split once per run."""

    passed: Mapping[str, str]
    dropped: tuple[str, ...] = ()  # secret-looking names, not passed
    declared: frozenset[str] = frozenset()  # names the workflow declared (envvars:, --envvars)


def split_environment(values: Mapping[str, str], declared: Iterable[str]) -> Environment:
    passed, dropped = filter_environment(values)
    return Environment(passed, tuple(dropped), frozenset(declared))


def dropped_warning(env: Environment) -> str | None:
    """The run-wide warning for secret-looking variables nobody declared (storage keys...)."""
    undeclared = [name for name in env.dropped if name not in env.declared]
    if not undeclared:
        return None
    return (
        "These variables are not passed to Batch jobs because they hold credentials or "
        f"secrets: {', '.join(undeclared)}. Inside jobs, AWS credentials come from the job "
        "role (--awsbatch-mpi-job-role-arn); give other secrets to jobs with "
        "--awsbatch-mpi-secrets NAME=ARN (Secrets Manager or SSM Parameter Store)."
    )


def rule_disk_warning(request: JobRequest, queue: QueueInfo) -> str | None:
    """The warning for a job on EC2 whose disk (as the user gave it) exceeds the root volume
    of its queue's instances; the caller gives it once per rule."""
    if queue.platform is not Platform.EC2:
        return None  # Fargate sizes ephemeralStorage from disk_mb
    disk = declared_disk(request)
    return None if disk is None else disk_warning(request.rule, disk, queue.name, queue.disks)


@dataclass(frozen=True)
class JobPlan:
    """Everything the executor sends for one job, before dependencies are known."""

    spec: JobSpec
    register: dict[str, Any] | None  # None: the rule names its own job definition
    warnings: tuple[str, ...] = field(default=(), compare=False)
    # Given once per rule, not per job (see rule_disk_warning).
    disk_warning: str | None = field(default=None, compare=False)

    @property
    def definition(self) -> str:
        """The job definition the SubmitJob names (the shape's hashed name, or the user's)."""
        if self.register is None:
            return str(self.spec.job_definition)
        return str(self.register["jobDefinitionName"])

    def submit(self, job_definition: str | None = None, depends_on: list[str] | None = None):
        return submit_payload(self.spec, job_definition or self.definition, depends_on)


def plan_job(
    request: JobRequest,
    settings: TranslationSettings,
    queue: QueueInfo,
    command: tuple[str, ...],
    environment: Environment,
    workflow: str,
    run_id: str,
    mpi_key_uri: str = "",
    depends_on_room: int = 0,
    fallback_of: str | None = None,
    *,
    validate: Validator,
) -> JobPlan:
    """Plan one job; raises `ResourceError` (a resource) or `PlanError` (a Batch limit).

    `validate` checks each request against Batch's API model (`batch.model.validate_request`).

    `fallback_of`: the job is the resubmission of that Spot-reclaimed Batch job to its
    fallback queue (`queue`), tagged so that the run report can mark it. On EC2 a job whose
    rule gives a disk checks its free space before the rule runs.
    """
    if queue.platform is Platform.EC2:
        command = guarded_command(command, request)
    tags = run_tags(run_id, request.rule, workflow)
    if fallback_of is not None:
        check_fallback_queue(request, queue)
        tags[FALLBACK_TAG] = fallback_of
    spec = translate(
        request,
        settings,
        queue,
        command=command,
        environment=environment.passed,
        name=job_name(request.rule, request.wildcards),
        run_tags=tags,
        mpi_key_uri=mpi_key_uri,
    )
    secret_names = {name for name, _ in spec.shape.secrets}
    missing = sorted(n for n in environment.dropped if n in environment.declared - secret_names)
    if missing:
        raise PlanError(
            f"Rule '{request.rule}': the workflow declares the environment variable(s) "
            f"{', '.join(missing)} (envvars: or --envvars), but their names look secret, so "
            "they are never copied into a Batch job, where anyone allowed DescribeJobs could "
            "read them. Store each in AWS Secrets Manager or SSM Parameter Store and pass "
            f"--awsbatch-mpi-secrets {missing[0]}=<secret ARN> (or resources: "
            f"awsbatch_secrets='{missing[0]}=<ARN>' on the rule) together with "
            "--awsbatch-mpi-execution-role-arn; AWS credentials come from the job role "
            "(--awsbatch-mpi-job-role-arn) instead."
        )
    if secret_names & {name for name, _ in spec.environment}:
        # A secret wins over a plain variable of the same name (ECS refuses both).
        kept = tuple((k, v) for k, v in spec.environment if k not in secret_names)
        spec = replace(spec, environment=kept)
    register = None if spec.job_definition else register_payload(spec.shape)
    plan = JobPlan(
        spec=spec,
        register=register,
        warnings=spec.warnings,
        disk_warning=rule_disk_warning(request, queue),
    )
    check_payloads(plan, validate, depends_on_room)
    return plan


def check_payloads(plan: JobPlan, validate: Validator, depends_on_room: int = 0) -> None:
    """The payloads against botocore's model and Batch's limits, with room for dependsOn."""
    spec = plan.spec
    definition = plan.definition if plan.register is None else _ARN_PREFIX + plan.definition
    submit = plan.submit(definition + ("" if plan.register is None else ":1"))
    size = len(json.dumps(submit).encode()) + depends_on_room
    if size > MAX_SUBMIT_BYTES:
        command = len(json.dumps(list(spec.command)).encode())
        env = len(json.dumps(list(spec.environment)).encode())
        raise PlanError(
            f"Rule '{spec.rule}': its SubmitJob request would be {size:,} bytes, but Batch "
            f"accepts at most {MAX_SUBMIT_BYTES:,} (30 KiB). Snakemake's command for the job "
            f"takes {command:,} bytes (every --config value is repeated in it) and the "
            f"environment {env:,}. Put large values in a config file (--configfile; it is "
            "deployed with the workflow sources) instead of --config, and shorten long "
            "environment variables."
        )
    problems = validate("SubmitJob", submit)
    if plan.register is not None:
        problems += validate("RegisterJobDefinition", plan.register)
    if problems:
        raise PlanError(
            f"Rule '{spec.rule}': AWS Batch would refuse its request: {'; '.join(problems)}."
        )
