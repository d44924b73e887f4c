"""Parsing one resource value as the user wrote it into a typed value, the first step of the
translation (values → sizes and MPI layout → spec → payloads).

Snakemake passes resources as ints, floats or strings, and unset ones as None or "". Every
parser raises `ResourceError` naming the rule, the resource and the value as written, so each
concern's module (`sizes`, `multinode`, `mounts`, `routing`, `resources`) checks its own
resources the same way and no module needs another's private helpers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from .spec import ResourceError


def given(res: Mapping[str, object], name: str) -> bool:
    """The resource is set (Snakemake passes unset ones as None or "")."""
    return res.get(name) not in (None, "")


def mib_from_mb(mb: float) -> float:
    """Snakemake's *_mb resources are 10^6 bytes; Batch sizes are MiB (2^20 bytes)."""
    return mb * 1_000_000 / 1_048_576


def positive_int(rule: str, name: str, value: object, minimum: int = 1) -> int:
    """Accept ints and integral strings/floats; Snakemake passes resources as int or str."""
    if isinstance(value, bool):
        raise ResourceError(rule, name, value, f"must be a whole number >= {minimum}.")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ResourceError(rule, name, value, f"must be a whole number >= {minimum}.") from None
    if not number.is_integer() or number < minimum:
        raise ResourceError(rule, name, value, f"must be a whole number >= {minimum}.")
    return int(number)


def positive_number(rule: str, name: str, value: object) -> float:
    """A finite number > 0 (sizes in MB/MiB, runtime in minutes)."""
    if isinstance(value, bool):
        raise ResourceError(rule, name, value, "must be a number > 0.")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ResourceError(rule, name, value, "must be a number > 0.") from None
    if not number > 0 or math.isinf(number):
        raise ResourceError(rule, name, value, "must be a number > 0.")
    return number


def flag(rule: str, name: str, value: object) -> bool:
    """True/False as Python or as text (`1`/`0`, `yes`/`no`, `on`/`off`; "" is False)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ResourceError(rule, name, value, "must be True or False.")
