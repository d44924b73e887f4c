"""Check request payloads against botocore's Batch service model and Batch's own limits.

botocore's model knows types and required members but not Batch's documented limits (payload
size, name pattern, dependsOn count), so both are checked here. Used by the tests for every
payload the plugin builds, and usable offline (no credentials, no network).
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import botocore.session
from botocore.validate import ParamValidator

from .dependencies import MAX_DEPENDS_ON
from .naming import JOB_NAME_PATTERN

MAX_SUBMIT_BYTES = 30 * 1024
MAX_REGISTER_BYTES = 24 * 1024


@cache
def _batch_model() -> Any:
    return botocore.session.get_session().get_service_model("batch")


def validate_request(operation: str, payload: dict[str, Any]) -> list[str]:
    """Problems with `payload` for `operation` (e.g. "SubmitJob"); empty when valid."""
    shape = _batch_model().operation_model(operation).input_shape
    report = ParamValidator().validate(payload, shape)
    problems = [line for line in report.generate_report().splitlines() if line.strip()]
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
