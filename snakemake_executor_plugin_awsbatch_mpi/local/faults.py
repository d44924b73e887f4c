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
def silence_node(job_name_prefix: str, node_index: int) -> Iterator[None]:
    """That node of matching multi-node jobs starts but never runs its command (never joins)."""
    from .patches import SILENT_NODES

    SILENT_NODES.add((job_name_prefix, node_index))
    try:
        yield
    finally:
        SILENT_NODES.discard((job_name_prefix, node_index))
