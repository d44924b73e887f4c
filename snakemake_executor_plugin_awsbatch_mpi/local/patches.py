"""Patches to moto 5.2.5's Batch backend that make it behave like AWS Batch, run locally.

moto is pinned exactly because these patches reach into its internals. Each patch fixes one
gap between moto and AWS Batch that a client of the plugin would trip over:

``Job.run``
    replaced by :func:`_run_job`, which keeps moto's state machine (SUBMITTED, PENDING,
    RUNNABLE, STARTING, RUNNING, then SUCCEEDED or FAILED, driven by ``advance()``) but
    starts containers through the emulation's runner (:class:`~.runner.Runner`: local
    processes, or Docker containers), never ``docker.from_env()``; it also

    * waits for dependencies with a short poll and records ``Dependent Job failed``;
    * starts every node of a multi-node job (main node first) and watches them
      *concurrently*: the job ends when the main node exits, with the main node's exit code,
      and the other nodes are then stopped (moto waited for each container in turn);
    * honours ``nodeOverrides`` (node count, per-node command and environment);
    * forwards output to CloudWatch Logs while the job runs, one stream per container
      (moto wrote all nodes into one stream, and only after the job ended);
    * passes the effective vCPUs and memory to the runner (Docker enforces them);
    * records exit code, container reason (``OutOfMemoryError: ...`` when the container was
      killed for exceeding its memory) and status reason on the job and its attempt.
``Job.describe`` / ``Job.describe_short``
    omit ``startedAt`` for jobs that never started (moto said 0), and add
    ``container.exitCode`` and ``container.reason`` (also in ``attempts[-1]``), a
    ``statusReason`` for failed jobs, the effective ``nodeProperties`` of multi-node jobs,
    and for container jobs the definition's container properties (image, roles, ...) and
    the effective ``resourceRequirements`` (definition merged with containerOverrides).
``Job._get_container_property``
    stops appending a duplicate ``AWS_BATCH_JOB_ID`` to the job's environment on every
    DescribeJobs (moto mutated the overrides list in place).
``Job.status``
    an array parent follows its children: PENDING once they move, SUCCEEDED when all
    succeeded, FAILED when all finished and any failed (moto left it SUBMITTED, so jobs
    depending on an array job waited for ever).
``Job.terminate`` / ``BatchBackend.terminate_job`` / ``cancel_job``
    terminating a finished job is a no-op; terminating or cancelling an array parent reaches
    its children.
``BatchResponse.submitjob`` / ``BatchBackend.submit_job`` / ``Job.__init__``
    read ``nodeOverrides`` from SubmitJob (moto dropped it), validate it, and attach it to
    the job.
``BatchBackend.describe_compute_environments``
    reports the status and reason the emulation gave a compute environment (moto always says
    VALID); a job whose queue has no ENABLED and VALID compute environment stays RUNNABLE, with
    Batch's reason when one is INVALID (see :mod:`.placement`).
``BatchBackend.describe_jobs``
    answers ``<job id>#<node index>`` with that node's status, exit code, address and stream.
``JobDefinition.describe``
    includes ``nodeProperties`` (moto omitted it).
``S3Backend.list_objects``
    a prefix listing reads only the keys under the prefix (:mod:`.s3_listing`): moto walked
    the whole bucket, so listings slowed down as the bucket filled, which S3 does not.

``retryStrategy`` given to SubmitJob is honoured (a definition's own is not): a failed attempt
is run again when ``attempts`` and ``evaluateOnExit`` say so (see ``retry.should_retry``).

Not fixed: array ``dependsOn`` types ``N_TO_N``/``SEQUENTIAL`` are treated like plain
dependencies, and ``attemptDurationSeconds`` below AWS's minimum of 60 is accepted.

CloudWatch Logs naming (group ``/aws/batch/job``):

* container and array-child jobs: ``<job definition name>/default/<job id>``, with ``:`` in
  an array child's id replaced by ``-`` (stream names may not contain ``:``);
* multi-node jobs: one stream per node, ``<job definition name>/default/<job id>/<node>``.
  DescribeJobs of the job reports the main node's stream as ``container.logStreamName``;
  DescribeJobs of ``<job id>#<node>`` reports each node's own stream.

All patches are installed by :func:`install` and removed by :func:`uninstall`; installing
twice is harmless.
"""

from __future__ import annotations

import copy
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from moto.batch import responses as batch_responses
from moto.batch.exceptions import ClientException
from moto.batch.models import BatchBackend, Job, JobDefinition, datetime2int_milliseconds
from moto.batch.utils import JobStatus
from moto.moto_api._internal.managed_state_model import ManagedState
from moto.s3.models import FakeBucket, S3Backend

from . import placement
from ._common import (
    DEPENDENCY_FAILED_REASON,
    MAIN_NODE_EXITED_REASON,
    NONZERO_EXIT_REASON,
    TIMEOUT_REASON,
)
from .network import node_network
from .retry import SPOT_RECLAIM_REASON, should_retry
from .runner import (
    NODE_OVERRIDES_ATTR,
    TIMED_OUT_ATTR,
    Container,
    Runner,
    StartRequest,
    effective_num_nodes,
    job_context_for,
    main_node_index,
)
from .s3_listing import bucket_view
from .volumes import Mount, gpus_of, mounts_of

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.1
LOG_FLUSH_SECONDS = 0.5
START_FAILED_REASON = "Task failed to start"
LOCAL_ERROR_REASON = "Local emulation error"
OOM_REASON = "OutOfMemoryError: Container killed due to memory usage"

NODES_ATTR = "_local_nodes"
RETRY_ATTR = "_local_retry_strategy"
# Job-name prefixes whose first attempt is "reclaimed" like a Spot instance (tests only).
SPOT_RECLAIMS: set[str] = set()
# Job-name prefixes whose every attempt on a Spot queue is reclaimed (tests only).
SPOT_RECLAIMS_EVERY: set[str] = set()
# (job-name prefix, node index) pairs whose node never runs its command (tests only).
SILENT_NODES: set[tuple[str, int]] = set()
CONTAINER_REASON_ATTR = "_local_container_reason"

_TERMINAL = (JobStatus.SUCCEEDED.value, JobStatus.FAILED.value)

_state_lock = threading.Lock()
_runtime: Runner | None = None
_originals: dict[tuple[type, str], Any] = {}
_MISSING = object()
_submit_context = threading.local()


# -- installation ---------------------------------------------------------------------------


def install(runtime: Runner) -> None:
    """Apply every patch (once) and route containers to ``runtime``."""
    global _runtime
    with _state_lock:
        _runtime = runtime
        if _originals:
            return
        replacements: list[tuple[type, str, Any]] = [
            (Job, "run", _run_job),
            (Job, "describe", _describe),
            (Job, "describe_short", _describe_short),
            (Job, "_get_container_property", _get_container_property),
            (Job, "status", property(_status_get, _status_set)),
            (Job, "terminate", _terminate),
            (Job, "__init__", _job_init),
            (BatchBackend, "submit_job", _submit_job),
            (BatchBackend, "describe_jobs", _describe_jobs),
            (BatchBackend, "terminate_job", _terminate_job),
            (BatchBackend, "cancel_job", _cancel_job),
            (BatchBackend, "describe_compute_environments", _describe_compute_environments),
            (batch_responses.BatchResponse, "submitjob", _submitjob_response),
            (JobDefinition, "describe", _job_definition_describe),
            (S3Backend, "list_objects", _list_objects),
        ]
        for cls, name, value in replacements:
            _originals[(cls, name)] = cls.__dict__.get(name, _MISSING)
            setattr(cls, name, value)


def uninstall() -> None:
    """Restore moto as it was; jobs still running keep the code they started with."""
    global _runtime
    with _state_lock:
        for (cls, name), original in _originals.items():
            if original is _MISSING:
                delattr(cls, name)
            else:
                setattr(cls, name, original)
        _originals.clear()
        _runtime = None


def installed() -> bool:
    return bool(_originals)


def _original(cls: type, name: str) -> Any:
    value = _originals.get((cls, name), _MISSING)
    if value is _MISSING:
        # Not defined on cls itself: inherited from a base class.
        for base in cls.__mro__[1:]:
            if name in base.__dict__:
                return base.__dict__[name]
        raise AttributeError(name)
    return value


# -- per-node bookkeeping ---------------------------------------------------------------------


@dataclass
class NodeRecord:
    """One container of a job (the only one, or one node of a multi-node job)."""

    index: int
    name: str
    image: str
    command: list[str]
    environment: dict[str, str]
    log_stream: str
    is_main: bool
    vcpus: float | None = None
    memory_mib: int | None = None
    mounts: tuple[Mount, ...] = ()
    gpus: int = 0
    container: Container | None = None
    status: str = JobStatus.RUNNABLE.value
    exit_code: int | None = None
    reason: str | None = None
    status_reason: str | None = None
    started_at: datetime | None = None
    stopped_at: datetime | None = None
    stopped_by_main: bool = False
    log_cursor: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def address(self) -> str | None:
        return self.container.address if self.container else None


def _target_range(target: str, num_nodes: int) -> range:
    start, sep, end = target.partition(":")
    if not sep:
        return range(int(start), int(start) + 1)
    first = int(start) if start else 0
    last = int(end) if end else num_nodes - 1
    return range(first, last + 1)


def _merge_env(base: list[dict[str, str]], override: list[dict[str, str]]) -> list[dict[str, str]]:
    merged = {e["name"]: e.get("value", "") for e in base}
    for entry in override:
        merged[entry["name"]] = entry.get("value", "")
    return [{"name": k, "value": v} for k, v in merged.items()]


def _node_container_specs(job_def: JobDefinition, overrides: dict[str, Any] | None) -> list[dict]:
    """Resolve each node's container properties: node ranges, then SubmitJob's overrides."""
    node_properties = job_def.node_properties or {}
    overrides = overrides or {}
    num_nodes = int(overrides.get("numNodes") or node_properties.get("numNodes", 1))
    if num_nodes < 1:
        raise ClientException("nodeOverrides.numNodes must be at least 1")
    main = int(node_properties.get("mainNode", 0))
    if main >= num_nodes:
        raise ClientException(f"mainNode {main} is not below numNodes {num_nodes}")
    specs: list[dict | None] = [None] * num_nodes
    for node_range in node_properties.get("nodeRangeProperties", []):
        for i in _target_range(node_range["targetNodes"], num_nodes):
            if i >= num_nodes:
                raise ClientException(
                    f"targetNodes {node_range['targetNodes']} exceeds numNodes {num_nodes}"
                )
            if specs[i] is None:
                specs[i] = copy.deepcopy(node_range.get("container", {}))
    missing = [i for i, spec in enumerate(specs) if spec is None]
    if missing:
        raise ClientException(f"nodes {missing} are not covered by any nodeRangeProperties")
    for override in overrides.get("nodePropertyOverrides", []) or []:
        container_overrides = override.get("containerOverrides", {}) or {}
        for i in _target_range(override["targetNodes"], num_nodes):
            if i >= num_nodes:
                raise ClientException(
                    f"nodePropertyOverrides targetNodes {override['targetNodes']} exceeds "
                    f"numNodes {num_nodes}"
                )
            spec = specs[i]
            assert spec is not None
            for key, value in container_overrides.items():
                if key == "environment":
                    spec["environment"] = _merge_env(spec.get("environment", []), value)
                elif key == "resourceRequirements":
                    # Type by type, as for a single container's containerOverrides.
                    spec[key] = _merged_requirements(spec.get(key) or [], value or [])
                else:
                    spec[key] = copy.deepcopy(value)
    return [spec for spec in specs if spec is not None]


def _stream_prefix(job: Job) -> str:
    return f"{job.job_definition.name}/default/{job.job_id.replace(':', '-')}"


def _secret_values(secrets: list[dict[str, str]]) -> dict[str, str]:
    """Batch `secrets`, resolved as ECS does when a container starts (from moto's stores)."""
    from moto.secretsmanager.models import secretsmanager_backends
    from moto.ssm.models import ssm_backends

    values = {}
    for secret in secrets:
        arn = secret["valueFrom"]
        _, _, service, region, account, rest = arn.split(":", 5)
        if service == "ssm":
            name = rest.removeprefix("parameter")
            param = ssm_backends[account][region].get_parameter(
                name if name.count("/") > 1 else name.lstrip("/")
            )
            value = param.value if param is not None else None
        else:
            answer = secretsmanager_backends[account][region].get_secret_value(arn, None, None)
            value = answer.get("SecretString")
        if value is None:
            raise ClientException(f"secret {arn} of {secret['name']} could not be read")
        values[secret["name"]] = value
    return values


def container_sizes(properties: dict[str, Any]) -> tuple[float | None, int | None]:
    """(vCPUs, memory in MiB) of container properties: resourceRequirements, else the
    legacy ``vcpus``/``memory`` fields; None where neither says."""
    by_type = {r["type"]: r["value"] for r in properties.get("resourceRequirements") or []}
    vcpus = by_type.get("VCPU", properties.get("vcpus"))
    memory = by_type.get("MEMORY", properties.get("memory"))
    return (
        float(vcpus) if vcpus is not None else None,
        int(float(memory)) if memory is not None else None,
    )


def _plan_nodes(job: Job) -> list[NodeRecord]:
    job_def = job.job_definition
    if job_def.container_properties is not None:
        env_list = job._get_container_property("environment", [])
        secrets = _secret_values(job_def.container_properties.get("secrets") or [])
        properties = job_def.container_properties
        sized = {
            **properties,
            "resourceRequirements": _merged_requirements(
                properties.get("resourceRequirements") or [],
                (job.container_overrides or {}).get("resourceRequirements") or [],
            ),
        }
        vcpus, memory_mib = container_sizes(sized)
        return [
            NodeRecord(
                index=0,
                name=f"{job.job_name}-{job.job_id.replace(':', '-')}",
                image=job_def.container_properties.get("image", "alpine:latest"),
                command=job._add_parameters_to_command(job._get_container_property("command", [])),
                environment={e["name"]: e.get("value", "") for e in env_list} | secrets,
                log_stream=_stream_prefix(job),
                is_main=True,
                vcpus=vcpus,
                memory_mib=memory_mib,
                mounts=mounts_of(properties),
                gpus=gpus_of(sized),
            )
        ]
    if job_def.node_properties is not None:
        main = main_node_index(job)
        specs = _node_container_specs(job_def, getattr(job, NODE_OVERRIDES_ATTR, None))
        return [
            NodeRecord(
                index=i,
                name=f"{job.job_name}-{job.job_id}-{i}",
                image=spec.get("image", "alpine:latest"),
                command=job._add_parameters_to_command(spec.get("command", [])),
                environment={e["name"]: e.get("value", "") for e in spec.get("environment", [])}
                | _secret_values(spec.get("secrets") or []),
                log_stream=f"{_stream_prefix(job)}/{i}",
                is_main=i == main,
                vcpus=container_sizes(spec)[0],
                memory_mib=container_sizes(spec)[1],
                mounts=mounts_of(spec),
                gpus=gpus_of(spec),
            )
            for i, spec in enumerate(specs)
        ]
    raise ClientException("only container and multinode jobs run in the local emulation")


# -- the job thread -----------------------------------------------------------------------------


def _advance_past(job: Job, status: JobStatus) -> None:
    job.advance()
    while job.status == status.value:
        time.sleep(POLL_SECONDS)


def _wait_for_dependencies(job: Job) -> bool:
    """Wait until every dependency SUCCEEDED; fail the job if one FAILED or it is stopped."""
    dependency_ids = [dep["jobId"] for dep in job.depends_on or []]
    while True:
        if job.stop:
            job._mark_stopped(success=False)
            return False
        pending = False
        for dependency_id in dependency_ids:
            dependency = job.all_jobs.get(dependency_id)
            status = dependency.status if dependency is not None else None
            if status == JobStatus.FAILED.value:
                logger.info("Job %s fails: dependency %s failed", job.job_id, dependency_id)
                if job.job_stopped_reason is None:
                    job.job_stopped_reason = DEPENDENCY_FAILED_REASON
                job._mark_stopped(success=False)
                return False
            if status != JobStatus.SUCCEEDED.value:
                pending = True
        if not pending:
            return True
        time.sleep(POLL_SECONDS * 2)


def _flush_logs(job: Job, nodes: list[NodeRecord]) -> None:
    for node in nodes:
        if node.container is None:
            continue
        lines = node.container.log_lines(node.log_cursor)
        if not lines:
            continue
        node.log_cursor += len(lines)
        events = [
            {"timestamp": int(line.timestamp * 1000), "message": line.text}
            for line in lines
            if line.text
        ]
        if events:
            job._log_backend.put_log_events(job._log_group, node.log_stream, events)


def _finish_node(node: NodeRecord, main_succeeded: bool | None = None) -> None:
    """Fix a node's final status once its container has exited."""
    if node.status in _TERMINAL or node.container is None:
        return
    container = node.container
    node.exit_code = container.exit_code
    node.stopped_at = datetime.now()
    if container.start_error:
        node.reason = container.start_error
        node.status_reason = START_FAILED_REASON
    elif container.oom_killed:
        node.reason = OOM_REASON
    if node.stopped_by_main and main_succeeded is not None:
        node.reason = MAIN_NODE_EXITED_REASON
        node.status = JobStatus.SUCCEEDED.value if main_succeeded else JobStatus.FAILED.value
        return
    node.status = JobStatus.SUCCEEDED.value if node.exit_code == 0 else JobStatus.FAILED.value
    if node.status == JobStatus.FAILED.value and node.status_reason is None:
        node.status_reason = NONZERO_EXIT_REASON


def _run_job(job: Job) -> None:
    """Replacement for moto's ``Job.run``: see the module docstring."""
    runtime = _runtime
    nodes: list[NodeRecord] = []
    try:
        if runtime is None:
            raise RuntimeError("the local emulation is not running")
        _advance_past(job, JobStatus.SUBMITTED)
        if job.depends_on and not _wait_for_dependencies(job):
            return
        _advance_past(job, JobStatus.PENDING)
        if not placement.hold_while_unplaceable(job):
            job._mark_stopped(success=False)
            return
        _advance_past(job, JobStatus.RUNNABLE)
        _advance_past(job, JobStatus.STARTING)
        attempt = 0
        while True:
            attempt += 1
            nodes = _plan_nodes(job)
            if job.stop:
                job._mark_stopped(success=False)
                return
            succeeded = _run_attempt(job, nodes, runtime, attempt)
            strategy = getattr(job, RETRY_ATTR, None)
            last = job.latest_attempt or {}
            if (
                succeeded
                or job.stop
                or not should_retry(
                    strategy,
                    attempt,
                    job.job_stopped_reason,
                    (last.get("container") or {}).get("reason"),
                    job.exit_code,
                )
            ):
                job._mark_stopped(success=succeeded)
                return
            logger.info("Batch retries job %s (attempt %d failed)", job.job_id, attempt)
            for node in nodes:
                if node.container is not None:
                    node.container.remove()
            nodes = []
            job.job_stopped_reason = None
            job.exit_code = None
            setattr(job, CONTAINER_REASON_ATTR, None)
    except Exception as err:  # a job thread must never die silently
        logger.exception("Local emulation failed to run job %s", job.job_id)
        if job.job_stopped_reason is None:
            job.job_stopped_reason = f"{LOCAL_ERROR_REASON}: {err}"
        job._mark_stopped(success=False)
    finally:
        for node in nodes:
            if node.container is not None:
                node.container.remove()


def _run_attempt(job: Job, nodes: list[NodeRecord], runtime: Runner, attempt: int) -> bool:
    """Start the containers of one attempt and watch it; True when it succeeded."""
    is_node = job.job_definition.type == "multinode"
    # awsvpc: what a node reaches outside its VPC depends on its subnets (local/network.py);
    # read before the attempt starts, as AWS has the network ready before the containers.
    network = node_network(job, runtime.endpoint_url, runtime.region) if is_node else None
    setattr(job, NODES_ATTR, nodes)
    main = next(node for node in nodes if node.is_main)
    job.log_stream_name = main.log_stream
    job.job_started_at = datetime.now()
    job._start_attempt()
    job._log_backend.ensure_log_group(job._log_group)
    for node in nodes:
        job._log_backend.ensure_log_stream(job._log_group, node.log_stream)

    # Main node first, as on Batch; the runtime gives the others the main node's address.
    for node in [main] + [n for n in nodes if not n.is_main]:
        silent = any(job.job_name.startswith(p) and node.index == i for p, i in SILENT_NODES)
        if network is not None and network.note:
            job._log_backend.put_log_events(
                job._log_group,
                node.log_stream,
                [{"timestamp": int(time.time() * 1000), "message": network.note}],
            )
        node.container = runtime.start(
            StartRequest(
                name=node.name,
                image=node.image,
                command=["/bin/bash", "-c", "sleep 3600"] if silent else node.command,
                environment=dict(node.environment),
                context=job_context_for(job, node.index if is_node else None),
                job=job,
                vcpus=node.vcpus,
                memory_mib=node.memory_mib,
                mounts=node.mounts,
                gpus=node.gpus,
                network=network,
            )
        )
        node.started_at = datetime.now()
        node.status = JobStatus.RUNNING.value

    reclaimed = _reclaimed(job, attempt)
    if reclaimed:
        # Like a Spot interruption: the instance goes away, the container has no exit code.
        job.job_stopped_reason = SPOT_RECLAIM_REASON
        main.container.kill("SIGKILL")
    succeeded = _watch(job, nodes, main, runtime)
    if reclaimed:
        # The command may have finished before the "instance" went away: it still counts as
        # lost, as on AWS when the host dies before the task is reported done.
        job.exit_code = None
        job.job_stopped_reason = SPOT_RECLAIM_REASON
        if job.latest_attempt is not None:
            job.latest_attempt["container"].pop("exitCode", None)
            job.latest_attempt["statusReason"] = SPOT_RECLAIM_REASON
    return succeeded and not reclaimed


def _reclaimed(job: Job, attempt: int) -> bool:
    """Whether this attempt loses its host like a Spot reclaim (the faults of tests)."""
    if attempt == 1 and any(job.job_name.startswith(p) for p in SPOT_RECLAIMS):
        return True
    return any(job.job_name.startswith(p) for p in SPOT_RECLAIMS_EVERY) and placement.on_spot(
        job
    )


def _watch(job: Job, nodes: list[NodeRecord], main: NodeRecord, rt: Runner) -> bool:
    """Wait for the main node, then stop the others and record the outcome."""
    assert main.container is not None
    stopping = False
    last_flush = 0.0
    while not main.container.has_exited():
        if job.stop and not stopping:
            stopping = True
            for node in nodes:
                assert node.container is not None
                node.container.kill()
        for node in nodes:
            if not node.is_main and node.container and node.container.has_exited():
                _finish_node(node)  # a child dying on its own does not end the job
        if time.monotonic() - last_flush >= LOG_FLUSH_SECONDS:
            _flush_logs(job, nodes)
            last_flush = time.monotonic()
        time.sleep(POLL_SECONDS)

    # The main node exited: the job is over, the other nodes are stopped.
    for node in nodes:
        assert node.container is not None
        if not node.is_main and not node.container.has_exited():
            node.stopped_by_main = True
            node.container.kill()
    for node in nodes:
        assert node.container is not None
        try:
            node.container.wait(timeout=rt.stop_grace_seconds + 5)
        except TimeoutError:
            node.container.kill("SIGKILL")
            node.container.wait(timeout=5)
    _flush_logs(job, nodes)

    exit_code = main.container.exit_code
    timed_out = bool(getattr(job, TIMED_OUT_ATTR, False))
    succeeded = exit_code == 0 and not job.stop and not timed_out
    _finish_node(main)
    for node in nodes:
        _finish_node(node, main_succeeded=succeeded)

    job.exit_code = exit_code
    setattr(job, CONTAINER_REASON_ATTR, main.reason)
    if not succeeded and job.job_stopped_reason is None:
        if timed_out:
            job.job_stopped_reason = TIMEOUT_REASON
        else:
            job.job_stopped_reason = main.status_reason or NONZERO_EXIT_REASON
    if job.latest_attempt is not None:
        attempt_container = job.latest_attempt["container"]
        attempt_container["exitCode"] = exit_code
        if main.reason:
            attempt_container["reason"] = main.reason
        attempt_container["networkInterfaces"] = [{"privateIpv4Address": main.address}]
        if job.job_stopped_reason is not None and not succeeded:
            job.latest_attempt["statusReason"] = job.job_stopped_reason
        job.latest_attempt["stoppedAt"] = datetime2int_milliseconds(datetime.now())
    return succeeded


# -- describe and friends -----------------------------------------------------------------------


def _get_container_property(self: Job, p: str, default: Any) -> Any:
    """moto's version, minus the in-place append to the job's environment overrides."""
    if p != "environment":
        return _original(Job, "_get_container_property")(self, p, default)
    assert self.job_definition.container_properties is not None
    job_env = [dict(e) for e in self.container_overrides.get("environment", default) or []]
    names = {e["name"] for e in job_env}
    for entry in self.job_definition.container_properties.get("environment", default) or []:
        if entry["name"] not in names:
            job_env.append(dict(entry))
    job_env = [e for e in job_env if e["name"] != "AWS_BATCH_JOB_ID"]
    job_env.append({"name": "AWS_BATCH_JOB_ID", "value": self.job_id})
    return job_env


def _describe_short(self: Job) -> dict[str, Any]:
    result = _original(Job, "describe_short")(self)
    if self.job_started_at.year <= 1970:
        # moto reports startedAt=0 for jobs that failed before starting; AWS omits it.
        result.pop("startedAt", None)
    return result


def _effective_node_properties(job: Job) -> dict[str, Any]:
    """The definition's node ranges with SubmitJob's nodeOverrides applied, as Batch shows."""
    node_properties = copy.deepcopy(job.job_definition.node_properties or {})
    num_nodes = effective_num_nodes(job)
    node_properties["numNodes"] = num_nodes
    specs = _node_container_specs(job.job_definition, getattr(job, NODE_OVERRIDES_ATTR, None))
    for node_range in node_properties.get("nodeRangeProperties", []):
        first = next(iter(_target_range(node_range["targetNodes"], num_nodes)), None)
        if first is not None and first < len(specs):
            node_range["container"] = copy.deepcopy(specs[first])
    return node_properties


def _merged_requirements(
    base: list[dict[str, str]], override: list[dict[str, str]]
) -> list[dict[str, str]]:
    """containerOverrides.resourceRequirements replace the definition's, type by type."""
    merged = {r["type"]: dict(r) for r in base}
    for requirement in override:
        merged[requirement["type"]] = dict(requirement)
    return list(merged.values())


def _complete_container_details(job: Job, container: dict[str, Any]) -> None:
    """Add what AWS's DescribeJobs shows and moto leaves out: the definition's container
    properties (image, roles, mount points, ...) and the effective resourceRequirements."""
    properties = job.job_definition.container_properties or {}
    for key, value in properties.items():
        container.setdefault(key, copy.deepcopy(value))
    overrides = job.container_overrides or {}
    requirements = _merged_requirements(
        properties.get("resourceRequirements", []) or [],
        overrides.get("resourceRequirements", []) or [],
    )
    if requirements:
        container["resourceRequirements"] = requirements
    by_type = {r["type"]: r["value"] for r in requirements}
    if "VCPU" in by_type:
        vcpus = float(by_type["VCPU"])
        container["vcpus"] = int(vcpus) if vcpus.is_integer() else vcpus
    if "MEMORY" in by_type:
        container["memory"] = int(float(by_type["MEMORY"]))
    if overrides.get("instanceType"):
        container["instanceType"] = overrides["instanceType"]


def _describe(self: Job) -> dict[str, Any]:
    result = _original(Job, "describe")(self)
    failed = result.get("status") == JobStatus.FAILED.value
    if "container" in result and self.job_definition.container_properties is not None:
        _complete_container_details(self, result["container"])
    if self.job_definition.type == "multinode" and self.job_definition.node_properties:
        result["nodeProperties"] = _effective_node_properties(self)
    reason = getattr(self, CONTAINER_REASON_ATTR, None)
    if self.job_stopped and not self._child_jobs and (self.exit_code is not None or reason):
        # A container that never started (an image Docker lacks) has a reason, no exit code.
        container = result.setdefault("container", {})
        if self.exit_code is not None:
            container["exitCode"] = self.exit_code
        if reason:
            container["reason"] = reason
    if failed and "statusReason" not in result and not self._child_jobs:
        if getattr(self, TIMED_OUT_ATTR, False):
            result["statusReason"] = TIMEOUT_REASON
        elif self.exit_code:
            result["statusReason"] = NONZERO_EXIT_REASON
    # Hand out copies: moto returns its live attempt dicts.
    result["attempts"] = copy.deepcopy(result.get("attempts", []))
    if result["attempts"] and self.job_stopped and self.exit_code is not None:
        last = result["attempts"][-1]
        last.setdefault("container", {})["exitCode"] = self.exit_code
        if "statusReason" in result and failed:
            last.setdefault("statusReason", result["statusReason"])
    return result


def _describe_node(job: Job, node: NodeRecord) -> dict[str, Any]:
    """DescribeJobs answer for ``<job id>#<node index>``."""
    status = node.status
    if node.status not in _TERMINAL and job.status in _TERMINAL:
        status = job.status
    container: dict[str, Any] = {
        "image": node.image,
        "command": node.command,
        "environment": [{"name": k, "value": v} for k, v in node.environment.items()],
        "logStreamName": node.log_stream,
        "networkInterfaces": [{"privateIpv4Address": node.address}] if node.address else [],
    }
    # What this node's container got (its node range with nodeOverrides), as Batch shows it.
    requirements = []
    if node.vcpus:
        requirements.append({"type": "VCPU", "value": f"{node.vcpus:g}"})
    if node.memory_mib:
        requirements.append({"type": "MEMORY", "value": str(node.memory_mib)})
    if node.gpus:
        requirements.append({"type": "GPU", "value": str(node.gpus)})
    if requirements:
        container["resourceRequirements"] = requirements
    if node.exit_code is not None:
        container["exitCode"] = node.exit_code
    if node.reason:
        container["reason"] = node.reason
    result: dict[str, Any] = {
        "jobArn": f"{job.arn}#{node.index}",
        "jobName": job.job_name,
        "jobId": f"{job.job_id}#{node.index}",
        "jobQueue": job.job_queue.arn,
        "status": status,
        "createdAt": datetime2int_milliseconds(job.job_created_at),
        "dependsOn": [],
        "jobDefinition": job.job_definition.arn,
        "parameters": dict(job.parameters),
        "container": container,
        "nodeDetails": {"nodeIndex": node.index, "isMainNode": node.is_main},
        "attempts": [],
        "tags": {},
    }
    if node.started_at:
        result["startedAt"] = datetime2int_milliseconds(node.started_at)
    if node.stopped_at:
        result["stoppedAt"] = datetime2int_milliseconds(node.stopped_at)
    if node.status_reason and status == JobStatus.FAILED.value:
        result["statusReason"] = node.status_reason
    return result


def _describe_compute_environments(
    self: BatchBackend, environments: list[str] | None = None
) -> list[dict[str, Any]]:
    answers = _original(BatchBackend, "describe_compute_environments")(self, environments)
    return placement.with_status(self, answers)


def _describe_jobs(self: BatchBackend, jobs: list[str] | None) -> list[dict[str, Any]]:
    if jobs is None:
        return _original(BatchBackend, "describe_jobs")(self, jobs)
    whole = [j for j in jobs if "#" not in j]
    # An empty filter would make moto describe *every* job.
    result = _original(BatchBackend, "describe_jobs")(self, whole) if whole else []
    for identifier in jobs:
        if "#" not in identifier:
            continue
        parent_id, _, index = identifier.rpartition("#")
        parent_id = parent_id.rsplit("job/", 1)[-1]
        job = self._jobs.get(parent_id)
        if job is None or not index.isdigit():
            continue
        for node in getattr(job, NODES_ATTR, None) or []:
            if node.index == int(index):
                result.append(_describe_node(job, node))
    return result


def _status_get(self: Job) -> str | None:
    """An array parent's status follows its children; other jobs use moto's state machine."""
    children = self.__dict__.get("_child_jobs")
    if not children or self.__dict__.get("job_stopped", True):
        return ManagedState.status.fget(self)  # type: ignore[attr-defined]
    statuses = [child.status for child in children]
    if all(status in _TERMINAL for status in statuses):
        started = [c.job_started_at for c in children if c.job_started_at.year > 1970]
        if started:
            self.job_started_at = min(started)
        self._mark_stopped(success=all(s == JobStatus.SUCCEEDED.value for s in statuses))
    elif any(status != JobStatus.SUBMITTED.value for status in statuses):
        self._status = JobStatus.PENDING.value
    return self._status


def _status_set(self: Job, value: str) -> None:
    ManagedState.status.fset(self, value)  # type: ignore[attr-defined]


def _terminate(self: Job, reason: str) -> None:
    if self.job_stopped:
        return  # AWS ignores TerminateJob for finished jobs
    _original(Job, "terminate")(self, reason)


def _terminate_job(self: BatchBackend, job_id: str, reason: str) -> None:
    _original(BatchBackend, "terminate_job")(self, job_id, reason)
    job = self.get_job_by_id(job_id)
    for child in (job._child_jobs or []) if job is not None else []:
        child.terminate(reason)


def _cancel_job(self: BatchBackend, job_id: str, reason: str) -> None:
    _original(BatchBackend, "cancel_job")(self, job_id, reason)
    job = self.get_job_by_id(job_id)
    for child in (job._child_jobs or []) if job is not None else []:
        _original(BatchBackend, "cancel_job")(self, child.job_id, reason)


def _list_objects(
    self: S3Backend, bucket: Any, prefix: str | None, *args: Any, **kwargs: Any
) -> Any:
    return _original(S3Backend, "list_objects")(
        self, bucket_view(bucket, prefix, FakeBucket), prefix, *args, **kwargs
    )


def _job_definition_describe(self: JobDefinition) -> dict[str, Any]:
    result = _original(JobDefinition, "describe")(self)
    if self.node_properties is not None:
        result["nodeProperties"] = self.node_properties
    return result


# -- SubmitJob with nodeOverrides -----------------------------------------------------------------


def _job_init(self: Job, *args: Any, **kwargs: Any) -> None:
    _original(Job, "__init__")(self, *args, **kwargs)
    setattr(self, NODE_OVERRIDES_ATTR, copy.deepcopy(getattr(_submit_context, "nodes", None)))
    setattr(self, RETRY_ATTR, copy.deepcopy(getattr(_submit_context, "retry", None)))


def _submit_job(
    self: BatchBackend,
    job_name: str,
    job_def_id: str,
    job_queue: str,
    array_properties: dict[str, int],
    depends_on: list[dict[str, str]] | None = None,
    container_overrides: dict[str, Any] | None = None,
    eks_properties_override: dict[str, Any] | None = None,
    timeout: dict[str, int] | None = None,
    parameters: dict[str, str] | None = None,
    tags: dict[str, str] | None = None,
    node_overrides: dict[str, Any] | None = None,
) -> tuple[str, str, str]:
    """moto's submit_job, plus ``nodeOverrides`` handed to the Job through a thread-local.

    The Job thread starts inside moto's submit_job, so the overrides must be on the Job
    before that; ``Job.__init__`` runs in this same request thread and picks them up.
    """
    if node_overrides:
        job_def = self.get_job_definition(job_def_id)
        if job_def is not None:
            if job_def.type != "multinode":
                raise ClientException("nodeOverrides are only valid for multinode jobs")
            _node_container_specs(job_def, node_overrides)  # validates
    _submit_context.nodes = node_overrides or None
    try:
        return _original(BatchBackend, "submit_job")(
            self,
            job_name,
            job_def_id,
            job_queue,
            array_properties,
            depends_on=depends_on,
            container_overrides=container_overrides,
            eks_properties_override=eks_properties_override,
            timeout=timeout,
            parameters=parameters,
            tags=tags,
        )
    finally:
        _submit_context.nodes = None


def _submitjob_response(self: batch_responses.BatchResponse) -> str:
    """moto's SubmitJob handler, also reading ``nodeOverrides``."""
    kwargs: dict[str, Any] = {
        "depends_on": self._get_param("dependsOn"),
        "container_overrides": self._get_param("containerOverrides"),
        "eks_properties_override": self._get_param("eksPropertiesOverride"),
        "timeout": self._get_param("timeout"),
        "array_properties": self._get_param("arrayProperties", {}),
        "parameters": self._get_param("parameters"),
        "tags": self._get_param("tags"),
    }
    node_overrides = self._get_param("nodeOverrides")
    if node_overrides:
        # Only passed when given: moto's "simple" (no-run) backend does not accept it.
        kwargs["node_overrides"] = node_overrides
    _submit_context.retry = self._get_param("retryStrategy")
    try:
        name, job_id, job_arn = self.batch_backend.submit_job(
            self._get_param("jobName"),
            self._get_param("jobDefinition"),
            self._get_param("jobQueue"),
            **kwargs,
        )
    finally:  # like the node overrides: never left for the thread's next request
        _submit_context.retry = None
    return json.dumps({"jobId": job_id, "jobName": name, "jobArn": job_arn})


def live_jobs() -> list[Job]:
    """moto jobs whose thread is still alive (for shutting the emulation down)."""
    return [t for t in threading.enumerate() if isinstance(t, Job) and t.is_alive()]


__all__ = ["install", "uninstall", "installed", "live_jobs", "NodeRecord"]
