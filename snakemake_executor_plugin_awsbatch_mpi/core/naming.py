"""Names Batch accepts: job names and content-hashed job definition names."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping

JOB_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{1,127}$")
MAX_NAME = 128
JOB_DEFINITION_PREFIX = "snakemake-awsbatch-mpi"


def short_hash(value: object, length: int = 12) -> str:
    """A stable hash of any JSON-serialisable value (key order does not matter)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def job_name(rule: str, wildcards: Mapping[str, object] | None = None) -> str:
    """`rule-wc1-wc2` made Batch-safe; long names are cut and end with a hash of the full name.

    The name is for humans scanning the console; uniqueness comes from the job id.
    """
    parts = [rule] + [str(v) for v in (wildcards or {}).values()]
    full = "-".join(parts)
    safe = re.sub(r"[^A-Za-z0-9_-]+", "_", full).strip("_-") or "job"
    if len(safe) < 2:
        safe = safe + "_job"
    if len(safe) > MAX_NAME:
        digest = short_hash(full, 8)
        safe = f"{safe[: MAX_NAME - len(digest) - 1]}-{digest}"
    assert JOB_NAME_PATTERN.match(safe), safe
    return safe


def job_definition_name(shape_payload: Mapping[str, object]) -> str:
    return f"{JOB_DEFINITION_PREFIX}-{short_hash(shape_payload)}"
