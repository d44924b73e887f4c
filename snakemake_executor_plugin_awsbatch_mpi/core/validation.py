"""Batch's own request limits, which botocore's service model does not know (pure).

botocore's model knows types and required members but not Batch's documented limits (payload
size, name pattern, dependsOn count): those are checked here. The model itself is read by
`batch/model.py` (botocore, a packaged file); the planner is handed that check as a
`Validator`, so the core stays free of I/O libraries.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from .dependencies import MAX_DEPENDS_ON
from .naming import JOB_NAME_PATTERN

MAX_SUBMIT_BYTES = 30 * 1024
MAX_REGISTER_BYTES = 24 * 1024

# (operation, payload) -> problems, empty when valid: `batch.model.validate_request`.
Validator = Callable[[str, dict[str, Any]], list[str]]


def limit_problems(operation: str, payload: dict[str, Any]) -> list[str]:
    """Problems with `payload` for `operation` (e.g. "SubmitJob") under Batch's limits."""
    problems: list[str] = []
    size = len(json.dumps(payload).encode())
    if operation == "SubmitJob":
        if size > MAX_SUBMIT_BYTES:
            problems.append(f"SubmitJob payload is {size} bytes; Batch accepts at most 30 KiB.")
        if not JOB_NAME_PATTERN.match(str(payload.get("jobName", ""))):
            problems.append(f"jobName {payload.get('jobName')!r} does not match Batch's pattern.")
        if len(payload.get("dependsOn", [])) > MAX_DEPENDS_ON:
            problems.append("dependsOn has more than 20 entries.")
    if operation == "RegisterJobDefinition" and size > MAX_REGISTER_BYTES:
        problems.append(
            f"RegisterJobDefinition payload is {size} bytes; Batch accepts at most 24 KiB."
        )
    return problems
