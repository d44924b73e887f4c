"""Settings that still hold a template's `<placeholder>` (issue 21 item 5).

The shipped `profiles/aws` is a template (`<cpu-job-queue>`, `<account>`, `<bucket>`). `plan`
renders and validates requests offline, and `<cpu-job-queue>` is a perfectly valid string to
botocore, so a plan of the untouched template said "Every request is valid". Each setting
that still holds a placeholder now gets a warning naming it.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from typing import Any

# `<cpu-job-queue>`, `<account>`, `<snakemake-batch-job-role>`: a word in angle brackets.
PLACEHOLDER = re.compile(r"<[A-Za-z][A-Za-z0-9_.-]*>")
# Snakemake settings (besides the plugin's own) that the template fills with placeholders.
SNAKEMAKE_SETTINGS = ("container_image", "default_storage_prefix")
STORAGE_SETTING_PREFIX = "storage_s3_"


def placeholders_in(value: object) -> list[str]:
    """The distinct placeholders in a setting's value (strings, mappings, lists)."""
    if value is None:
        return []
    if isinstance(value, Mapping):
        text = " ".join(f"{k}={v}" for k, v in value.items())
    elif isinstance(value, list | tuple | set | frozenset):
        text = " ".join(str(item) for item in value)
    else:
        text = str(value)
    return list(dict.fromkeys(PLACEHOLDER.findall(text)))


def placeholder_warnings(values: Iterable[tuple[str, object]]) -> list[str]:
    """One warning per setting (as the profile spells it) whose value holds a placeholder."""
    warnings = []
    for name, value in values:
        found = placeholders_in(value)
        if found:
            which = "placeholder " if len(found) == 1 else "placeholders "
            warnings.append(
                f"The setting {name} still holds the template's {which}{', '.join(found)}: "
                "replace it with your own value; until then the requests are valid in form "
                "only."
            )
    return warnings


def setting_values(executor_settings: Any, snakemake_args: Any) -> list[tuple[str, object]]:
    """(name as a profile writes it, value) of the plugin's settings and Snakemake's own."""
    values: list[tuple[str, object]] = []
    if dataclasses.is_dataclass(executor_settings):
        for field in dataclasses.fields(executor_settings):
            name = "awsbatch-mpi-" + field.name.replace("_", "-")
            values.append((name, getattr(executor_settings, field.name, None)))
    names = [*SNAKEMAKE_SETTINGS]
    names += sorted(n for n in vars(snakemake_args) if n.startswith(STORAGE_SETTING_PREFIX))
    for attribute in names:
        values.append((attribute.replace("_", "-"), getattr(snakemake_args, attribute, None)))
    return values


__all__ = ["PLACEHOLDER", "placeholder_warnings", "placeholders_in", "setting_values"]
