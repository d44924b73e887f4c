"""Where the emulation places a job: compute environments that can hold a queue's jobs in
RUNNABLE, and the Spot capacity whose hosts can be reclaimed.

moto answers every compute environment as ``VALID`` and places every job at once. On AWS a
queue whose compute environments are all DISABLED or INVALID keeps its jobs RUNNABLE for
ever, and Batch writes why into the job's ``statusReason`` ("Jobs stuck in RUNNABLE due to
invalid compute environments", AWS Batch User Guide). The emulation models that here:

* a compute environment's status can be set to INVALID with a reason
  (:func:`set_status`, used by ``faults.invalid_compute_environment``); DescribeComputeEnvironments
  then reports it (:func:`with_status`);
* a job whose queue has no ENABLED and VALID compute environment stays RUNNABLE
  (:func:`hold_while_unplaceable`), with Batch's reason when one is INVALID.
"""

from __future__ import annotations

import time
from typing import Any

from moto.batch.models import BatchBackend, ComputeEnvironment, Job

# Batch's statusReason of a RUNNABLE job whose queue's compute environments are all invalid.
INVALID_CE_REASON = "ACTION_REQUIRED - CE(s) associated with the job queue are invalid."
VALID_REASON = "Compute environment is available"
STATUS_ATTR = "_local_status"
STATUS_REASON_ATTR = "_local_status_reason"
HOLD_POLL_SECONDS = 0.2
SPOT_TYPES = ("SPOT", "FARGATE_SPOT")


def set_status(env: ComputeEnvironment, status: str | None, reason: str | None) -> None:
    """Make DescribeComputeEnvironments report `status`/`reason` (None: moto's VALID)."""
    setattr(env, STATUS_ATTR, status)
    setattr(env, STATUS_REASON_ATTR, reason)


def status_of(env: ComputeEnvironment) -> str:
    return getattr(env, STATUS_ATTR, None) or "VALID"


def with_status(backend: BatchBackend, answers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """DescribeComputeEnvironments' answer with the status and reason set on each
    environment (moto always says VALID)."""
    for answer in answers:
        env = backend.get_compute_environment(answer["computeEnvironmentArn"])
        if env is not None and getattr(env, STATUS_ATTR, None):
            answer["status"] = status_of(env)
            answer["statusReason"] = getattr(env, STATUS_REASON_ATTR, None) or ""
    return answers


def queue_environments(job: Job) -> list[ComputeEnvironment]:
    """The compute environments of the job's queue, in order."""
    found = []
    for entry in sorted(job.job_queue.env_order_json, key=lambda e: e.get("order", 0)):
        env = job.backend.get_compute_environment(entry["computeEnvironment"])
        if env is not None:
            found.append(env)
    return found


def blocked_reason(envs: list[ComputeEnvironment]) -> tuple[bool, str | None]:
    """(the queue cannot place jobs, Batch's statusReason for its RUNNABLE jobs)."""
    usable = [e for e in envs if e.state == "ENABLED" and status_of(e) == "VALID"]
    if usable:
        return False, None
    if envs and any(status_of(e) == "INVALID" for e in envs):
        return True, INVALID_CE_REASON
    return True, None  # all DISABLED: the jobs just wait, without a reason


def hold_while_unplaceable(job: Job) -> bool:
    """Keep a RUNNABLE job RUNNABLE while its queue cannot place it; False if it was stopped."""
    shown: str | None = None
    while True:
        if job.stop:
            return False
        blocked, reason = blocked_reason(queue_environments(job))
        if not blocked:
            if shown is not None and job.job_stopped_reason == shown:
                job.job_stopped_reason = None
            return True
        if reason != shown and job.job_stopped_reason in (None, shown):
            job.job_stopped_reason = reason
            shown = reason
        time.sleep(HOLD_POLL_SECONDS)


def on_spot(job: Job) -> bool:
    """Every compute environment of the job's queue runs on Spot: its host can be reclaimed."""
    envs = queue_environments(job)
    return bool(envs) and all(
        str((e.compute_resources or {}).get("type", "EC2")) in SPOT_TYPES for e in envs
    )
