"""Jobs stuck in RUNNABLE: notice them, and say once per queue what Batch knows about why.

A job no compute environment can place stays RUNNABLE for ever, and Batch says nothing unless
asked. After `--awsbatch-mpi-runnable-warning` minutes (measured from the status check that
first saw the job RUNNABLE) the executor logs one warning per queue with the job's
`statusReason`, each compute environment's state, status and reason, its vCPUs, and whether its
instance types fit the job (`core.capacity`, the table the planner refuses jobs by). It warns
again only when that picture changes, never per job or per check, and never cancels: a queue
that is scaling up looks the same for a while.

The status checks already describe every job; the only extra calls are one DescribeJobQueues per
stuck queue per run and one DescribeComputeEnvironments per stuck queue at most once per
`max(60 s, warning time)`, and only while a job is overdue.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..core.capacity import limit_of, placement_problem
from .client import BatchClient, BatchSetupError

RUNNABLE = "RUNNABLE"
# Compute environments are described again at most this often per stuck queue.
MIN_REFRESH_SECONDS = 60.0


@dataclass(frozen=True)
class Demand:
    """What a job asks of one instance (per node for a multi-node job)."""

    vcpus: float
    memory_mib: int
    gpus: int = 0
    nodes: int = 1


def demand_of(description: Mapping[str, Any]) -> Demand | None:
    """The job's sizes from its DescribeJobs answer, None when Batch did not give them."""
    nodes = 1
    container: Mapping[str, Any] = description.get("container") or {}
    node_properties = description.get("nodeProperties") or {}
    if node_properties:
        nodes = int(node_properties.get("numNodes") or 1)
        ranges = node_properties.get("nodeRangeProperties") or [{}]
        container = ranges[0].get("container") or {}
    values = {r.get("type"): r.get("value") for r in container.get("resourceRequirements") or []}
    try:
        vcpus = float(values.get("VCPU") or container.get("vcpus") or 0)
        memory = int(float(values.get("MEMORY") or container.get("memory") or 0))
        gpus = int(float(values.get("GPU") or 0))
    except (TypeError, ValueError):
        return None
    if not vcpus and not memory:
        return None
    return Demand(vcpus=vcpus, memory_mib=memory, gpus=gpus, nodes=nodes)


def fit_text(env: Mapping[str, Any], demand: Demand | None) -> str:
    """Whether any instance type of the environment fits the job, in words."""
    limit = limit_of(env)
    if not limit.usable:
        return "unmanaged, so its instances were not checked"
    if demand is None:
        return "the job's size is unknown, so the fit was not checked"
    problem = placement_problem(
        (limit,), demand.vcpus, demand.memory_mib, demand.gpus, demand.nodes
    )
    if problem:
        return f"the job can never run there: {problem}"
    if limit.fargate:
        return "Fargate can run the job"
    if limit.largest is None:
        return "the job is within its maxvCpus (its instance types are not in the plugin's table)"
    return f"an instance type fits the job (up to {limit.largest.name})"


def environment_text(env: Mapping[str, Any], demand: Demand | None) -> str:
    """One compute environment: state, status and reason, vCPUs, and the fit."""
    name = env.get("computeEnvironmentName", "?")
    state, status = env.get("state", "?"), env.get("status", "?")
    text = f"'{name}' {state} and {status}"
    reason = env.get("statusReason")
    if reason and (status != "VALID" or state != "ENABLED"):
        text += f" ({reason})"
    resources = env.get("computeResources") or {}
    if resources:
        desired, most = resources.get("desiredvCpus"), resources.get("maxvCpus", "?")
        if desired is None:
            text += f", at most {most} vCPUs (Batch reported none in use)"
        else:
            text += f", {desired} of {most} vCPUs in use"
    return f"{text}; {fit_text(env, demand)}"


def reason_key(
    descriptions: Sequence[Mapping[str, Any]], envs: Sequence[Mapping[str, Any]] | None
) -> tuple[Any, ...]:
    """What a warning says about why (not which jobs, nor vCPUs that move while scaling)."""
    reasons = tuple(sorted({str(d.get("statusReason") or "") for d in descriptions}))
    states = tuple(
        (e.get("computeEnvironmentName"), e.get("state"), e.get("status"), e.get("statusReason"))
        for e in envs or ()
    )
    return reasons, states, envs is None


def queue_name(ref: str) -> str:
    """A queue's name from its ARN (DescribeJobs gives the ARN)."""
    return ref.rsplit("/", 1)[-1]


def stuck_warning(
    queue: str,
    stuck: Sequence[tuple[str, Mapping[str, Any]]],
    envs: Sequence[Mapping[str, Any]] | None,
    minutes: float,
    problem: str | None = None,
) -> str:
    """The warning for one queue; `stuck` is (rule, DescribeJobs answer) of its overdue jobs."""
    rule, first = stuck[0]
    others = f" and {len(stuck) - 1} more" if len(stuck) > 1 else ""
    reasons = sorted(
        {str(d["statusReason"]).rstrip(".") for _, d in stuck if d.get("statusReason")}
    )
    said = (
        "; ".join(reasons)
        if reasons
        else "no statusReason yet (the queue may be scaling up, or cannot place the job)"
    )
    demand = demand_of(first)
    if envs is None:
        environments = f"could not be read ({problem})"
    elif not envs:
        environments = "none: the queue has no compute environment"
    else:
        environments = "; ".join(environment_text(env, demand) for env in envs)
    return (
        f"Queue '{queue}': Batch job {first.get('jobId', '?')} of rule '{rule}'{others} "
        f"has been RUNNABLE for more than {minutes:g} minute(s). Batch says: {said}. "
        f"Compute environments: {environments}. The plugin does not cancel these jobs (a "
        "queue that is scaling up looks the same for a while): fix what is named above, or "
        "cancel them; queues made by `awsbatch-mpi setup` cancel jobs Batch can never place "
        "after `setup --runnable-timeout` seconds (default 3600). Check the queue with "
        f"`awsbatch-mpi doctor --job-queue {queue}`."
    )


class RunnableMonitor:
    """Remembers since when each job is RUNNABLE and warns once per queue and reason."""

    def __init__(
        self,
        batch: BatchClient,
        minutes: float,
        warn: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.batch = batch
        self.minutes = float(minutes or 0)
        self.seconds = self.minutes * 60
        self.warn = warn
        self.clock = clock
        self._since: dict[str, float] = {}
        self._said: dict[str, tuple[Any, ...]] = {}

    def check(self, jobs: Mapping[str, tuple[str, Mapping[str, Any]]]) -> None:
        """`jobs`: job id → (rule, DescribeJobs answer), as one status check read them."""
        if self.seconds <= 0:
            return
        now = self.clock()
        overdue: dict[str, list[tuple[str, Mapping[str, Any]]]] = {}
        for job_id, (rule, description) in jobs.items():
            if description.get("status") != RUNNABLE:
                self._since.pop(job_id, None)
                continue
            since = self._since.setdefault(job_id, now)
            if now - since >= self.seconds:
                ref = str(description.get("jobQueue") or "?")
                overdue.setdefault(ref, []).append((rule, description))
        for ref, stuck in overdue.items():
            self._warn_queue(ref, stuck)

    def _warn_queue(self, ref: str, stuck: list[tuple[str, Mapping[str, Any]]]) -> None:
        envs: list[dict[str, Any]] | None
        problem = None
        try:
            envs = self.batch.current_environments(ref, max(MIN_REFRESH_SECONDS, self.seconds))
        except (ClientError, BotoCoreError, BatchSetupError) as err:
            envs, problem = None, str(err)
        key = reason_key([d for _, d in stuck], envs)
        if self._said.get(ref) == key:
            return
        self._said[ref] = key
        self.warn(stuck_warning(queue_name(ref), stuck, envs, self.minutes, problem))
