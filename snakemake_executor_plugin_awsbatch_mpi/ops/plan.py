"""`awsbatch-mpi plan`: every Batch request a workflow would cause, rendered and validated.

Pure: input is the workflow's jobs as plain data (see `workflow.py`) and the executor's
translation settings; output is a JSON document and a readable report. Each job goes
through the executor's own translation (`resources.translate`) and payload builders
(`jobdef.register_payload`, `jobdef.submit_payload`), and each payload through
`batch.model.validate_request` (botocore's service model plus Batch's limits). No
credentials, no network.

The document is stable across runs: keys are sorted, jobs come in topological order, and
what changes on every run (the run id, the URI of each MPI job's rendezvous key, Snakemake's
job command with its source-archive checksum) is replaced by placeholders.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..batch.model import validate_request
from ..core.dependencies import MAX_DEPENDS_ON, reduce_dependencies
from ..core.fallback import PLANNED_JOB_ID, fallback_queue_of
from ..core.images import image_warning, runs_in_snakemake_image
from ..core.jobdef import barrier_payload, barrier_shape, register_payload, submit_payload
from ..core.planner import (
    Environment,
    PlanError,
    dropped_warning,
    plan_job,
    split_environment,
)
from ..core.request import JobRequest, TranslationSettings
from ..core.resources import resource_typo_warning
from ..core.root_volume import AMI_DEFAULT_ROOT_GIB, RootVolume
from ..core.routing import resolve_queue
from ..core.spec import JobSpec, Platform, QueueInfo, ResourceError
from ..core.validation import MAX_SUBMIT_BYTES
from .workflow import LoadedWorkflow, WorkflowJob, split_resources

PLAN_FORMAT = 1
RUN_ID = "<run-id>"
# The key itself is never in a request; the URI names a new object for every job.
MPI_KEY_URI = "s3://<default-storage-prefix>/.awsbatch-mpi/keys/<run-id>/<new for every job>"
ENV_VALUE = "<value from the submitting environment>"
# Snakemake's job command (the job launcher of core/command.py, ~0.4 KiB, with Snakemake's
# "--deploy-sources s3://... <checksum> ..." and job arguments) changes with every source
# change; it is typically 1.5-4 KiB long.
COMMAND_ALLOWANCE_BYTES = 4096


def command_placeholder(key: str) -> str:
    return f"<snakemake job command of {key}>"


PLACEHOLDERS = {
    RUN_ID: "the run id, new for every snakemake invocation (tag snakemake-run-id)",
    MPI_KEY_URI: (
        "where the nodes of one multi-node job read the key that authenticates them to each "
        "other (written just before SubmitJob, deleted when the job ends)"
    ),
    ENV_VALUE: "the value of the variable where snakemake runs",
    PLANNED_JOB_ID: (
        "in fallbackSubmitJob: the id of the Batch job whose Spot host was reclaimed on its "
        "last attempt (tag snakemake-fallback-of)"
    ),
    command_placeholder("<job>"): (
        "Snakemake's command for the job (deploys the workflow sources, then runs the job in "
        "remote mode, in one interpreter); payload sizes are checked with "
        f"{COMMAND_ALLOWANCE_BYTES} bytes set aside for it"
    ),
}


@dataclass
class Plan:
    document: dict[str, Any]
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.problems


def root_volume(gib: int | None) -> RootVolume:
    """The root volume `plan` assumes for the instances of every EC2 queue, and whence."""
    if gib is not None:
        return RootVolume("", gib, "given with --root-volume-gib")
    return RootVolume(
        "",
        AMI_DEFAULT_ROOT_GIB,
        "assumed by plan: the ECS-optimized AMI's default; pass --root-volume-gib N with the "
        "size your compute environments' launch template gives (`awsbatch-mpi setup` gives "
        "100 GiB unless told otherwise), or check the real queues with `awsbatch-mpi doctor "
        "--snakefile`",
    )


def _queue_info(name: str, fargate_queues: Iterable[str], volume: RootVolume) -> QueueInfo:
    if name in set(fargate_queues):
        return QueueInfo(name=name, platform=Platform.FARGATE)
    return QueueInfo(name=name, platform=Platform.EC2, disks=(volume,))


def request_of(job: WorkflowJob) -> JobRequest:
    """The executor's request for a job, without resources known only at run time."""
    known, _ = split_resources(job)
    return JobRequest(
        rule=job.rule,
        threads=job.threads,
        resources=known,
        wildcards=dict(job.wildcards),
        is_group=job.is_group,
        written=job.written,
        container=job.container,
        declared=job.declared,
    )


def _size_warning(payload: dict[str, Any], allowance: int) -> str | None:
    """Batch's SubmitJob limit, counting the room the real command will take."""
    raw = len(json.dumps(payload).encode())
    if raw <= MAX_SUBMIT_BYTES < raw + allowance:
        return (
            f"The SubmitJob payload is {raw} bytes without Snakemake's command (typically "
            f"1-4 KiB); with it, it may exceed Batch's {MAX_SUBMIT_BYTES} bytes. Shorten the "
            "rule's environment variables or tags."
        )
    return None


def _validation_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """The payload with job references replaced by job-id-shaped strings, as sent."""
    checked = dict(payload)
    if "dependsOn" in checked:
        checked["dependsOn"] = [
            {"jobId": str(uuid.uuid5(uuid.NAMESPACE_URL, str(d.get("job"))))}
            for d in checked["dependsOn"]
        ]
    return checked


def _as_references(payload: dict[str, Any]) -> dict[str, Any]:
    if "dependsOn" in payload:
        payload = {**payload, "dependsOn": [{"job": d["jobId"]} for d in payload["dependsOn"]]}
    return payload


def settings_document(
    settings: TranslationSettings, fargate_queues: Iterable[str]
) -> dict[str, Any]:
    return {
        "job_queue": settings.job_queue,
        "gpu_job_queue": settings.gpu_job_queue,
        "multinode_job_queue": settings.multinode_job_queue,
        "fallback_job_queue": settings.fallback_job_queue,
        "gpu_queues": dict(settings.gpu_queues),
        "fargate_queues": sorted(set(fargate_queues)),
        "default_image": settings.default_image,
        "job_role_arn": settings.job_role_arn,
        "execution_role_arn": settings.execution_role_arn,
        "log_group": settings.log_group,
        "default_memory_mib": settings.default_memory_mib,
        "tags": dict(settings.tags),
        "secrets": dict(settings.secrets),
        "assign_public_ip": settings.assign_public_ip,
        "volumes": [str(volume) for volume in settings.volumes or ()],
        "runtime_volume": str(settings.runtime_volume) if settings.runtime_volume else None,
        "snakemake_images": list(settings.snakemake_images or ()),
    }


def build_plan(
    workflow: LoadedWorkflow,
    settings: TranslationSettings,
    fargate_queues: Iterable[str] = (),
    array_rules: Iterable[str] = (),
    root_volume_gib: int | None = None,
    setting_warnings: Iterable[str] = (),
) -> Plan:
    """Translate, render and validate every job; collect problems instead of stopping.

    `root_volume_gib`: the root volume of the EC2 queues' instances (None: the AMI default).
    `setting_warnings` (e.g. template placeholders left in the profile) come first.
    """
    fargate_queues = sorted(set(fargate_queues))
    volume = root_volume(root_volume_gib)
    plan_problems: list[str] = list(workflow.refusals)
    plan_warnings: list[str] = list(setting_warnings)
    environment = split_environment(
        {name: ENV_VALUE for name in workflow.envvars}, workflow.envvars
    )
    env_warning = dropped_warning(environment)
    if env_warning:
        plan_warnings.append(env_warning)
    definitions: dict[str, dict[str, Any]] = {}
    batch_keys = {job.key for job in workflow.jobs if not job.local}
    jobs_out: list[dict[str, Any]] = []
    barriers_out: list[dict[str, Any]] = []
    local_out: list[dict[str, Any]] = []
    disk_warnings: dict[str, str] = {}  # one per rule
    in_snakemake_image: list[str] = []
    typo_warnings: dict[str, None] = {}  # one per rule, in DAG order
    deferred_rules: dict[str, set[str]] = {}

    for job in workflow.jobs:
        if job.local:
            local_out.append({"job": job.key, "rule": job.rule, "upstream": list(job.upstream)})
            continue
        entry: dict[str, Any] = {
            "job": job.key,
            "rule": job.rule,
            "wildcards": dict(job.wildcards),
            "resources": {k: v for k, v in job.resources.items() if not k.startswith("_")},
        }
        jobs_out.append(entry)
        problems: list[str] = []
        request = request_of(job)
        _, deferred = split_resources(job)
        if deferred:
            entry["resources_at_run_time"] = deferred
            deferred_rules.setdefault(job.rule, set()).update(deferred)
        try:
            queue = _queue_info(resolve_queue(request, settings), fargate_queues, volume)
            job_plan = plan_job(
                request,
                settings,
                queue,
                command=("/bin/bash", "-c", command_placeholder(job.key)),
                environment=environment,
                workflow=workflow.name,
                run_id=RUN_ID,
                mpi_key_uri=MPI_KEY_URI,
                validate=validate_request,
            )
        except (ResourceError, PlanError) as err:
            entry["error"] = str(err)
            plan_problems.append(f"job {job.key}: {err}")
            continue
        spec = job_plan.spec
        entry["queue"] = spec.queue
        entry["platform"] = spec.shape.platform.value
        # Which image the job runs, where it came from, and whether the plugin's runtime is
        # mounted to bring Snakemake into it (issue 22).
        entry["image"] = spec.shape.image
        entry["image_source"] = spec.image_source
        entry["runtime_mounted"] = spec.runtime
        if spec.mpi is not None:
            entry["nodes"] = spec.mpi.nodes
        if spec.shape.volumes:
            entry["volumes"] = [str(volume) for volume in spec.shape.volumes]
        if spec.shape.efa_devices:
            entry["efa_devices"] = spec.shape.efa_devices
        if spec.warnings:
            entry["warnings"] = list(spec.warnings)
        if job_plan.disk_warning:
            disk_warnings.setdefault(job.rule, job_plan.disk_warning)
        if runs_in_snakemake_image(spec):
            in_snakemake_image.append(job.rule)
        typo = resource_typo_warning(request)
        if typo:
            typo_warnings[typo] = None

        register = job_plan.register
        definition = job_plan.definition
        if register is None:
            entry["registerJobDefinition"] = None
        else:
            entry["registerJobDefinition"] = definition
            if definition not in definitions:
                definitions[definition] = register
                problems += [
                    f"RegisterJobDefinition {definition}: {p}"
                    for p in validate_request("RegisterJobDefinition", register)
                ]

        upstream = [key for key in job.upstream if key in batch_keys]
        depends = _fan_in(spec, upstream, definitions, barriers_out, problems)
        submit = _as_references(submit_payload(spec, definition, depends))
        entry["submitJob"] = submit
        checked = _validation_payload(submit)
        problems += [f"SubmitJob: {p}" for p in validate_request("SubmitJob", checked)]
        problems += _fallback(
            entry,
            request,
            settings,
            _queue_info(fallback_queue_of(request, settings) or "", fargate_queues, volume),
            ("/bin/bash", "-c", command_placeholder(job.key)),
            environment,
            workflow.name,
            definitions,
        )
        size_warning = _size_warning(checked, COMMAND_ALLOWANCE_BYTES)
        if size_warning:
            entry.setdefault("warnings", []).append(size_warning)
            plan_warnings.append(f"job {job.key}: {size_warning}")
        if problems:
            entry["problems"] = problems
            plan_problems += [f"job {job.key} (rule {job.rule}): {p}" for p in problems]

    for rule, names in sorted(deferred_rules.items()):
        plan_warnings.append(
            f"Rule '{rule}': {', '.join(sorted(names))} depend on the sizes of input files "
            "that do not exist yet; they are evaluated when the job is submitted, and the plan "
            "shows the job without them (defaults apply)."
        )
    plan_warnings += list(typo_warnings)
    plan_warnings += [disk_warnings[rule] for rule in sorted(disk_warnings)]
    image = image_warning(settings.default_image, in_snakemake_image)
    if image:
        plan_warnings.append(image)
    checkpoints = sorted({job.rule for job in workflow.jobs if job.checkpoint})
    if checkpoints:
        plan_warnings.append(
            f"Checkpoint rule(s) {', '.join(checkpoints)}: jobs that depend on their outputs "
            "are known only after they ran, so the plan may list fewer jobs than will run."
        )
    # Arrays are the default (issue 20): a note in the report, not a warning.
    arrays = sorted(set(array_rules))
    array_note = (
        f"Array jobs: on for {', '.join(arrays)} (jobs of a rule that become ready together "
        "go as one array job with the same sizes; the plan shows each job's own request; "
        "--awsbatch-mpi-array-jobs none turns them off)."
        if arrays
        else "Array jobs: off (one SubmitJob per job)."
    )
    document = {
        "plan_format": PLAN_FORMAT,
        "workflow": workflow.name,
        "settings": settings_document(settings, fargate_queues),
        "placeholders": dict(PLACEHOLDERS),
        "depends_on_note": (
            "dependsOn lists the Batch jobs producing a job's inputs; the executor sends it "
            f"with --immediate-submit (fan-ins wider than {MAX_DEPENDS_ON} go through the "
            "barrier jobs below); otherwise Snakemake itself waits for the inputs."
        ),
        "source_files": list(workflow.source_files),
        "local_jobs": local_out,
        "job_definitions": definitions,
        "jobs": jobs_out,
        "barriers": barriers_out,
        "array_jobs_note": array_note,
        "warnings": plan_warnings,
        "problems": plan_problems,
        "valid": not plan_problems,
    }
    return Plan(document=document, problems=plan_problems, warnings=plan_warnings)


def _fallback(
    entry: dict[str, Any],
    request: JobRequest,
    settings: TranslationSettings,
    queue: QueueInfo,
    command: tuple[str, ...],
    environment: Environment,
    workflow: str,
    definitions: dict[str, dict[str, Any]],
) -> list[str]:
    """The request the executor sends when the job's Spot host is reclaimed on its last
    attempt: the same job, planned for its fallback queue (`fallbackSubmitJob`)."""
    if not queue.name:
        return []
    try:
        fallback = plan_job(
            request,
            settings,
            queue,
            command=command,
            environment=environment,
            workflow=workflow,
            run_id=RUN_ID,
            fallback_of=PLANNED_JOB_ID,
            validate=validate_request,
        )
    except (ResourceError, PlanError) as err:
        return [f"fallback to queue '{queue.name}': {err}"]
    if fallback.register is not None and fallback.definition not in definitions:
        definitions[fallback.definition] = fallback.register
    submit = submit_payload(fallback.spec, fallback.definition)
    entry["fallbackSubmitJob"] = submit
    return [f"fallback SubmitJob: {p}" for p in validate_request("SubmitJob", submit)]


def _fan_in(
    spec: JobSpec,
    upstream: list[str],
    definitions: dict[str, dict[str, Any]],
    barriers: list[dict[str, Any]],
    problems: list[str],
) -> list[str]:
    """References the job depends on, through barrier jobs as the executor does past
    MAX_DEPENDS_ON."""
    if len(upstream) <= MAX_DEPENDS_ON:
        return upstream
    register = register_payload(barrier_shape(spec.shape))
    definition = register["jobDefinitionName"]
    definitions.setdefault(definition, register)

    def submit_barrier(ids: list[str], index: int) -> str:
        payload = _as_references(barrier_payload(spec, definition, ids, index))
        key = payload["jobName"]
        barriers.append({"job": key, "for": spec.name, "submitJob": payload})
        problems.extend(
            f"barrier {key}: {p}"
            for p in validate_request("SubmitJob", _validation_payload(payload))
        )
        return key

    return reduce_dependencies(upstream, submit_barrier)


def render_json(plan: Plan) -> str:
    """Stable, diff-friendly JSON: sorted keys, two-space indent, trailing newline."""
    return json.dumps(plan.document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def render_report(plan: Plan, out: str | None = None) -> str:
    doc = plan.document
    jobs = doc["jobs"]
    rules = sorted({j["rule"] for j in jobs})
    lines = [
        f"Planned {len(jobs)} Batch job(s) of {len(rules)} rule(s), "
        f"{len(doc['job_definitions'])} job definition(s)"
        + (f", {len(doc['barriers'])} fan-in barrier job(s)" if doc["barriers"] else "")
        + (
            f"; {len(doc['local_jobs'])} local job(s) run where snakemake runs"
            if doc["local_jobs"]
            else ""
        )
        + "."
    ]
    by_rule: dict[str, list[Mapping[str, Any]]] = {}
    for job in jobs:
        by_rule.setdefault(job["rule"], []).append(job)
    for rule in rules:
        members = by_rule[rule]
        first = members[0]
        if "error" in first:
            lines.append(f"  {rule}: {len(members)} job(s), cannot be translated")
            continue
        sizes = _sizes(first.get("submitJob", {}))
        queue = first.get("queue", "?")
        nodes = f", {first['nodes']} nodes" if first.get("nodes") else ""
        mounts = f"; mounts {' '.join(first['volumes'])}" if first.get("volumes") else ""
        if first.get("efa_devices"):
            mounts += f"; {first['efa_devices']} EFA device(s) per node"
        fallback = (first.get("fallbackSubmitJob") or {}).get("jobQueue")
        if fallback:
            mounts += f"; after a Spot reclaim once more on {fallback}"
        lines.append(f"  {rule}: {len(members)} job(s) on {queue} ({sizes}{nodes}){mounts}")
        lines.append(f"    image {_image_words(first)}")
    secrets = doc["settings"].get("secrets") or {}
    if secrets:
        lines.append(
            f"Secrets injected by ECS when each job starts: {', '.join(sorted(secrets))}."
        )
    lines.append(doc["array_jobs_note"])
    for warning in plan.warnings:
        lines.append(f"Warning: {warning}")
    if plan.problems:
        lines.append(f"The plan is NOT valid ({len(plan.problems)} problem(s)):")
        lines += [f"  {p}" for p in plan.problems]
        lines.append("Fix the rules' resources or the settings named above and plan again.")
    else:
        lines.append(
            "Every request is valid for AWS Batch"
            + (" in form (see the warnings above)." if plan.warnings else ".")
        )
    if out:
        lines.append(f"Plan written to {out}.")
    return "\n".join(lines)


def _image_words(job: Mapping[str, Any]) -> str:
    """`image X (from ...); runtime mounted` as the report says it."""
    source = {
        "container": "the rule's container: directive",
        "awsbatch_image": "resources: awsbatch_image",
        "default": "--container-image",
    }.get(str(job.get("image_source")), str(job.get("image_source")))
    runtime = (
        "Snakemake runs from the plugin's runtime, mounted read-only"
        if job.get("runtime_mounted")
        else "the image's own Snakemake"
    )
    return f"{job.get('image', '?')} (from {source}); {runtime}"


def _sizes(submit: Mapping[str, Any]) -> str:
    overrides = submit.get("containerOverrides")
    if overrides is None:
        node = (submit.get("nodeOverrides") or {}).get("nodePropertyOverrides") or [{}]
        overrides = node[0].get("containerOverrides", {})
    reqs = {r["type"]: r["value"] for r in overrides.get("resourceRequirements", [])}
    text = f"{reqs.get('VCPU', '?')} vCPU, {reqs.get('MEMORY', '?')} MiB"
    if "GPU" in reqs:
        text += f", {reqs['GPU']} GPU"
    return text
