"""Fault injection for tests: make the emulated Batch API answer like a busy account."""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from moto.batch.responses import BatchResponse
from moto.core.exceptions import AWSError

_lock = threading.Lock()


@contextmanager
def throttle_batch_api(
    emulation: Any = None, fraction: float = 0.3, seed: int = 7
) -> Iterator[Counter[str]]:
    """Answer `fraction` of Batch API calls with HTTP 429 TooManyRequestsException.

    The emulation's server runs in this process, so patching moto's response class affects
    every client of it. Yields a counter of throttled and passed calls.
    """
    del emulation  # the server is in-process; the argument documents which one is affected
    rng = random.Random(seed)
    counter: Counter[str] = Counter()
    original = BatchResponse.call_action

    def call_action(self: BatchResponse) -> Any:
        with _lock:
            throttle = rng.random() < fraction
            counter["throttled" if throttle else "passed"] += 1
        if throttle:
            error = AWSError("Too Many Requests", "TooManyRequestsException", 429)
            headers = dict(error.get_headers() or [])
            headers["status"] = 429
            return 429, headers, error.get_body()
        return original(self)

    BatchResponse.call_action = call_action  # type: ignore[method-assign]
    try:
        yield counter
    finally:
        BatchResponse.call_action = original  # type: ignore[method-assign]


@contextmanager
def reclaim_first_attempt(job_name_prefix: str) -> Iterator[None]:
    """Jobs whose name starts with the prefix lose their first attempt like a Spot reclaim.

    The attempt ends without an exit code and with statusReason "Host EC2 (...) terminated.";
    what happens next is up to the job's retryStrategy, as on AWS.
    """
    from .patches import SPOT_RECLAIMS

    SPOT_RECLAIMS.add(job_name_prefix)
    try:
        yield
    finally:
        SPOT_RECLAIMS.discard(job_name_prefix)


@contextmanager
def reclaim_every_attempt(job_name_prefix: str) -> Iterator[None]:
    """Every attempt of matching jobs on a Spot queue loses its host, like a Spot reclaim.

    Only queues whose compute environments are all Spot are affected (on-demand hosts are not
    reclaimed), so the same job resubmitted to an on-demand queue runs. This is Spot capacity
    that is gone: Batch's own retries in the Spot queue fail again.
    """
    from .patches import SPOT_RECLAIMS_EVERY

    SPOT_RECLAIMS_EVERY.add(job_name_prefix)
    try:
        yield
    finally:
        SPOT_RECLAIMS_EVERY.discard(job_name_prefix)


# A reason Batch gives a compute environment it cannot use (here: a deleted instance profile).
INVALID_CE_STATUS_REASON = (
    "CLIENT_ERROR - Instance profile arn:aws:iam::123456789012:instance-profile/gone "
    "does not exist"
)


@contextmanager
def invalid_compute_environment(
    name: str, reason: str = INVALID_CE_STATUS_REASON
) -> Iterator[None]:
    """The compute environment `name` is INVALID (with `reason`) until the block ends.

    DescribeComputeEnvironments reports it, and a queue with no other usable environment holds
    its jobs in RUNNABLE with Batch's statusReason "ACTION_REQUIRED - CE(s) associated with the
    job queue are invalid.", as on AWS; they run once the environment is VALID again.
    """
    from moto.batch.models import batch_backends

    from .placement import set_status

    found = [
        env
        for accounts in batch_backends.values()
        for backend in accounts.values()
        if (env := backend.get_compute_environment(name)) is not None
    ]
    if not found:
        raise ValueError(f"no compute environment named {name!r} in the emulation")
    for env in found:
        set_status(env, "INVALID", reason)
    try:
        yield
    finally:
        for env in found:
            set_status(env, None, None)


@contextmanager
def silence_node(job_name_prefix: str, node_index: int) -> Iterator[None]:
    """That node of matching multi-node jobs starts but never runs its command (never joins)."""
    from .patches import SILENT_NODES

    SILENT_NODES.add((job_name_prefix, node_index))
    try:
        yield
    finally:
        SILENT_NODES.discard((job_name_prefix, node_index))
