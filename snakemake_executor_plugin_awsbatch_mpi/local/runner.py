"""What the emulation's runners share: the container contract and the container environment.

moto keeps the Batch state; the patched job thread (see :mod:`.patches`) asks a *runner* to
start, watch, stop and collect the output of each container. A runner is anything with the
:class:`Runner` surface: :class:`~.runtime.LocalContainerRuntime` (local process groups, the
default) or :class:`~.docker_runner.DockerRunner` (``--runtime docker``).

Both give the same environment (:func:`container_environment`): a clean base (never the
submitter's variables, so the submitter's AWS credentials cannot leak into a job), the job's
variables, Batch's ``AWS_BATCH_*`` variables, then job-role-like credentials and the
emulation endpoint, which win over anything the job definition says. A :class:`JobContext`
is read off the moto job duck-typed, so this module never imports moto.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from ..core.environment import AWS_CREDENTIAL_VARS
from ._common import JOB_ROLE_ACCESS_KEY_ID, JOB_ROLE_SECRET_ACCESS_KEY, TIMEOUT_REASON
from .network import NodeNetwork
from .volumes import Mount

logger = logging.getLogger(__name__)

# Attribute names set on moto Job objects by the emulation's patches (see patches.py); kept
# here because the runtime reads them and must not import moto.
NODE_OVERRIDES_ATTR = "_local_node_overrides"
TIMED_OUT_ATTR = "_local_timed_out"


@dataclass(frozen=True)
class LogLine:
    """One line of container output, stamped with the time it was read."""

    timestamp: float
    stream: str
    text: str


@dataclass(frozen=True)
class JobContext:
    """What the runtime learned from the moto job that asked for a container."""

    job_id: str
    queue_name: str
    compute_environment_name: str
    attempt: int
    array_index: int | None = None
    node_index: int | None = None
    num_nodes: int | None = None
    main_node_index: int | None = None
    deadline: float | None = None

    @property
    def is_node(self) -> bool:
        return self.node_index is not None

    @property
    def container_job_id(self) -> str:
        """``AWS_BATCH_JOB_ID`` as Batch sets it: ``<id>#<node>`` inside multi-node nodes."""
        if self.node_index is not None:
            return f"{self.job_id}#{self.node_index}"
        return self.job_id


def attempt_duration_seconds(job: Any) -> float | None:
    """Timeout of one attempt, from SubmitJob's ``timeout`` or else the job definition's."""
    for source in (getattr(job, "timeout", None), getattr(job.job_definition, "timeout", None)):
        if source and source.get("attemptDurationSeconds"):
            return float(source["attemptDurationSeconds"])
    return None


def effective_num_nodes(job: Any) -> int:
    """Number of nodes of a multi-node job, honouring SubmitJob's ``nodeOverrides.numNodes``."""
    overrides = getattr(job, NODE_OVERRIDES_ATTR, None) or {}
    if overrides.get("numNodes"):
        return int(overrides["numNodes"])
    return int((job.job_definition.node_properties or {}).get("numNodes", 1))


def main_node_index(job: Any) -> int:
    return int((job.job_definition.node_properties or {}).get("mainNode", 0))


def job_context_for(job: Any, node_index: int | None = None) -> JobContext:
    """Read a ``JobContext`` off a moto job (duck-typed so this module never imports moto)."""
    queue = job.job_queue
    environments = getattr(queue, "environments", None) or []
    ce_name = environments[0].name if environments else ""
    array_index = (getattr(job, "array_properties", None) or {}).get("index")
    deadline = None
    duration = attempt_duration_seconds(job)
    if duration:
        started: datetime | None = getattr(job, "job_started_at", None)
        start = started.timestamp() if started and started.year > 1970 else time.time()
        deadline = start + duration
    return JobContext(
        job_id=job.job_id,
        queue_name=queue.name,
        compute_environment_name=ce_name,
        attempt=max(1, len(getattr(job, "attempts", None) or [])),
        array_index=None if array_index is None else int(array_index),
        node_index=node_index,
        num_nodes=effective_num_nodes(job) if node_index is not None else None,
        main_node_index=main_node_index(job) if node_index is not None else None,
        deadline=deadline,
    )


@dataclass(frozen=True)
class StartRequest:
    """What a runner needs to start one container of a job attempt."""

    name: str
    image: str
    command: list[str]
    environment: dict[str, str]
    context: JobContext | None = None
    job: Any | None = None  # the moto Job, told when the container times out
    vcpus: float | None = None
    memory_mib: int | None = None
    # Shared file systems of the job definition (see local/volumes.py).
    mounts: tuple[Mount, ...] = ()
    # GPUs Batch assigned; the process runtime fakes them (NVIDIA_VISIBLE_DEVICES).
    gpus: int = 0
    # What a multi-node node may reach outside its VPC (see local/network.py); None: all.
    network: NodeNetwork | None = None


class Container(Protocol):
    """One started container, as the job thread watches it."""

    name: str
    address: str | None
    exit_code: int | None
    start_error: str | None
    oom_killed: bool

    def log_lines(self, start: int = 0) -> list[LogLine]: ...
    def has_exited(self) -> bool: ...
    def wait(self, timeout: float | None = None) -> int | None: ...
    def kill(self, signal_name: str | int | None = None) -> None: ...
    def remove(self) -> None: ...


class Runner(Protocol):
    """Starts, watches, stops and collects the output of containers (see the module doc)."""

    endpoint_url: str
    region: str
    stop_grace_seconds: float

    def start(self, request: StartRequest) -> Container: ...
    def live_count(self) -> int: ...
    def shutdown(self, grace: float | None = None) -> None: ...


def record_timeout(job: Any | None, name: str) -> None:
    """Record on the moto job why its container is being killed, so DescribeJobs says so."""
    logger.info("Container %s exceeded its attempt duration; killing it", name)
    if job is not None:
        setattr(job, TIMED_OUT_ATTR, True)
        if getattr(job, "job_stopped_reason", None) is None:
            job.job_stopped_reason = TIMEOUT_REASON


def batch_environment(context: JobContext, main_address: str) -> dict[str, str]:
    """The ``AWS_BATCH_*`` variables AWS Batch sets inside a container of this job.

    Only the other nodes of a multi-node job learn the main node's address, as on Batch.
    """
    env = {
        "AWS_BATCH_JOB_ID": context.container_job_id,
        "AWS_BATCH_JOB_ATTEMPT": str(context.attempt),
        "AWS_BATCH_CE_NAME": context.compute_environment_name,
        "AWS_BATCH_JQ_NAME": context.queue_name,
    }
    if context.array_index is not None:
        env["AWS_BATCH_JOB_ARRAY_INDEX"] = str(context.array_index)
    if context.node_index is not None:
        assert context.main_node_index is not None
        env["AWS_BATCH_JOB_NODE_INDEX"] = str(context.node_index)
        env["AWS_BATCH_JOB_NUM_NODES"] = str(context.num_nodes)
        env["AWS_BATCH_JOB_MAIN_NODE_INDEX"] = str(context.main_node_index)
        if context.node_index != context.main_node_index:
            env["AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS"] = main_address
    return env


def job_role_environment(region: str, endpoint_url: str) -> dict[str, str]:
    """What the (emulated) job role and the emulation give every container, last (winning)."""
    return {
        "AWS_ACCESS_KEY_ID": JOB_ROLE_ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": JOB_ROLE_SECRET_ACCESS_KEY,
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
        "AWS_ENDPOINT_URL": endpoint_url,
    }


def container_environment(
    base: dict[str, str],
    job_env: dict[str, str],
    context: JobContext | None,
    main_address: str,
    region: str,
    endpoint_url: str,
) -> dict[str, str]:
    """base, then the job's variables, then Batch's, then the job role's (pure)."""
    env = {**base, **job_env}
    if context is not None:
        env.update(batch_environment(context, main_address))
    # Credentials a job must not bring along: the (emulated) job role decides them.
    for name in AWS_CREDENTIAL_VARS:
        env.pop(name, None)
    env.update(job_role_environment(region, endpoint_url))
    return env
