"""The emulated Batch API's quota, and fault injection for tests (a busy account).

AWS allows each account and region 50 Batch API calls per second and answers the others with
HTTP 429 `TooManyRequestsException`. `BatchQuota` does the same in the emulation: it is on by
default (`LocalEmulation(batch_quota=...)`, `awsbatch-mpi local --batch-quota N`, 0 turns it
off), so that clients meet the quota on the emulation before they meet it on AWS.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from moto.batch.responses import BatchResponse
from moto.core.exceptions import AWSError

_lock = threading.Lock()

# AWS Batch API calls per second per account and region (SubmitJob's quota; AWS says the
# other calls share the pressure).
BATCH_QUOTA = 50.0


def _throttled() -> tuple[int, dict[str, Any], str]:
    """moto's answer for a throttled call: HTTP 429 TooManyRequestsException, as AWS."""
    error = AWSError("Too Many Requests", "TooManyRequestsException", 429)
    headers = dict(error.get_headers() or [])
    headers["status"] = 429
    return 429, headers, error.get_body()


class BatchQuota:
    """At most `rate` Batch calls within any one second; the others are throttled.

    A sliding window of one second, not a token bucket: a client that was idle gets no burst
    above the rate. `counts` has "passed" and "throttled" calls.
    """

    def __init__(self, rate: float = BATCH_QUOTA) -> None:
        if rate <= 0:
            raise ValueError(f"A Batch quota needs a positive rate, not {rate}.")
        self.rate = float(rate)
        self.counts: Counter[str] = Counter()
        self._times: deque[float] = deque()
        self._lock = threading.Lock()

    def admit(self, now: float | None = None) -> bool:
        """Whether one more call fits in the last second (and count it)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            while self._times and self._times[0] <= now - 1.0:
                self._times.popleft()
            if len(self._times) < self.rate:
                self._times.append(now)
                self.counts["passed"] += 1
                return True
            self.counts["throttled"] += 1
            return False


_quota: BatchQuota | None = None
_unquoted: Any = None


def install_quota(rate: float) -> BatchQuota:
    """Put the quota on the in-process server's Batch API (replacing an earlier quota)."""
    global _quota, _unquoted
    quota = BatchQuota(rate)
    with _lock:
        _quota = quota
        if _unquoted is None:
            original = _unquoted = BatchResponse.call_action

            def call_action(self: BatchResponse) -> Any:
                # Reads the quota of the moment: a wrapper left behind by a fault injection
                # that outlived the quota lets every call pass.
                current = _quota
                if current is not None and not current.admit():
                    return _throttled()
                return original(self)

            BatchResponse.call_action = call_action  # type: ignore[method-assign]
    return quota


def uninstall_quota() -> None:
    """Take the quota off again (idempotent)."""
    global _quota, _unquoted
    with _lock:
        _quota = None
        if _unquoted is not None:
            BatchResponse.call_action = _unquoted  # type: ignore[method-assign]
            _unquoted = None


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
            return _throttled()
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
