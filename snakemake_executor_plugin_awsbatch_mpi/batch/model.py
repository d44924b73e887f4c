"""Requests checked against botocore's Batch service model and Batch's own limits.

Reads the model botocore ships (a packaged file: no credentials, no network), so `plan` works
offline. The executor and `plan` hand `validate_request` to the planner, which checks every
job's requests with it before the first SubmitJob; the tests check every payload the plugin
builds with it too.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import botocore.session
from botocore.validate import ParamValidator

from ..core.validation import limit_problems


@cache
def _batch_model() -> Any:
    return botocore.session.get_session().get_service_model("batch")


def validate_request(operation: str, payload: dict[str, Any]) -> list[str]:
    """Problems with `payload` for `operation` (e.g. "SubmitJob"); empty when valid."""
    shape = _batch_model().operation_model(operation).input_shape
    report = ParamValidator().validate(payload, shape)
    problems = [line for line in report.generate_report().splitlines() if line.strip()]
    return problems + limit_problems(operation, payload)


__all__ = ["validate_request"]
