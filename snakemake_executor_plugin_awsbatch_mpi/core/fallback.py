"""The on-demand fallback queue of a job whose Spot host was reclaimed (pure).

Batch retries a reclaimed job in the same Spot queue (`evaluateOnExit`); when Spot capacity is
gone, every retry is reclaimed too. With `--awsbatch-mpi-fallback-job-queue Q` (or a rule's
`awsbatch_fallback_queue="Q"`), the executor submits such a job once more to Q, planned by the
same planner as every other request, tagged with the id of the job it replaces so that the run
report can mark it. Multi-node jobs never run on Spot and have no fallback.
"""

from __future__ import annotations

import re

from .multinode import mpi_layout_of
from .request import JobRequest, TranslationSettings
from .routing import resolve_queue
from .spec import QueueInfo, ResourceError
from .values import given

RESOURCE = "awsbatch_fallback_queue"
# The tag of a fallback job: the id of the Spot-reclaimed job it replaces.
FALLBACK_TAG = "snakemake-fallback-of"
# Stands for the replaced job's id when a fallback request is planned before any submission.
PLANNED_JOB_ID = "00000000-0000-0000-0000-000000000000"
_QUEUE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
_QUEUE_ARN = re.compile(r"^arn:aws[a-z-]*:batch:[a-z0-9-]+:\d{12}:job-queue/[A-Za-z0-9_-]{1,128}$")


def fallback_queue_of(request: JobRequest, settings: TranslationSettings) -> str | None:
    """The queue a Spot-reclaimed job of this rule goes to once more, None for none.

    The rule's `awsbatch_fallback_queue` wins over --awsbatch-mpi-fallback-job-queue.
    """
    res, rule = request.resources, request.rule
    if not given(res, RESOURCE):
        if mpi_layout_of(request) is not None:
            return None  # multi-node jobs run on on-demand queues only
        return settings.fallback_job_queue or None
    value = res[RESOURCE]
    if isinstance(value, bool) or not isinstance(value, str):
        raise ResourceError(
            rule, RESOURCE, value,
            "must name an on-demand job queue (its name or ARN), e.g. "
            "awsbatch_fallback_queue='snk-ondemand'.",
        )  # fmt: skip
    queue = value.strip()
    if not (_QUEUE_NAME.match(queue) or _QUEUE_ARN.match(queue)):
        raise ResourceError(
            rule, RESOURCE, value,
            "must be a job queue name (letters, digits, '-' and '_', at most 128) or a job "
            "queue ARN.",
        )  # fmt: skip
    if mpi_layout_of(request) is not None:
        raise ResourceError(
            rule, RESOURCE, value,
            "multi-node MPI jobs never run on Spot, so they are never moved to a fallback "
            "queue; remove the resource.",
        )  # fmt: skip
    if queue == resolve_queue(request, settings):
        raise ResourceError(
            rule, RESOURCE, value,
            "is the queue the rule's jobs already run in; name an on-demand queue other "
            "than that one.",
        )  # fmt: skip
    return queue


def check_fallback_queue(request: JobRequest, queue: QueueInfo) -> None:
    """Refuse a fallback queue with Spot capacity: the job could be reclaimed again."""
    if not queue.has_spot:
        return
    written = request.resources.get(RESOURCE)
    name, value = (RESOURCE, written) if given(request.resources, RESOURCE) else (
        "--awsbatch-mpi-fallback-job-queue", queue.name
    )
    raise ResourceError(
        request.rule, name, value,
        f"queue '{queue.name}' has Spot compute environments, so a job resubmitted there "
        "after a Spot reclaim can lose its host again; name an on-demand queue (such as the "
        "'<stack>-ondemand' queue `awsbatch-mpi setup` creates).",
    )  # fmt: skip
