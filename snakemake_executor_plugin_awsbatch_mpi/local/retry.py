"""Batch's `retryStrategy`, which moto ignores, for the local emulation (pure).

AWS semantics: conditions are tried in order, the first match decides (RETRY or EXIT); when
none matches, the job is retried while attempts remain. Patterns may end with `*`.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any

SPOT_RECLAIM_REASON = "Host EC2 (instance i-0local0emulated0) terminated."


def _matches(pattern: str | None, value: str | None) -> bool:
    if pattern is None:
        return True
    if value is None:
        return pattern == "*"
    return fnmatchcase(value, pattern)


def should_retry(
    strategy: dict[str, Any] | None,
    attempt: int,
    status_reason: str | None,
    reason: str | None,
    exit_code: int | None,
) -> bool:
    """Whether Batch would start another attempt after failed attempt number `attempt`."""
    if not strategy or attempt >= int(strategy.get("attempts", 1)):
        return False
    for rule in strategy.get("evaluateOnExit") or []:
        if (
            _matches(rule.get("onStatusReason"), status_reason)
            and _matches(rule.get("onReason"), reason)
            and _matches(rule.get("onExitCode"), None if exit_code is None else str(exit_code))
        ):
            return str(rule.get("action", "")).upper() == "RETRY"
    return True
