"""Decide which environment variables may travel into a Batch job.

Anything in a job's overrides is readable by whoever can call DescribeJobs, and lands in
CloudTrail. Credentials therefore never travel: inside the job they come from the job role.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

# Credentials and the files or profiles that point at them: useless or dangerous in a job.
AWS_CREDENTIAL_VARS = frozenset(
    {
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_SHARED_CREDENTIALS_FILE",
        "AWS_CONFIG_FILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    }
)
SECRET_NAME = re.compile(
    r"(SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL|PRIVATE_KEY|ACCESS_KEY|API_KEY|AUTH)",
    re.IGNORECASE,
)


def is_secret(name: str) -> bool:
    return name.upper() in AWS_CREDENTIAL_VARS or bool(SECRET_NAME.search(name))


def filter_environment(env: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """Split `env` into what may be passed to a job and the names that were dropped."""
    kept = {k: v for k, v in env.items() if not is_secret(k)}
    dropped = sorted(k for k in env if is_secret(k))
    return kept, dropped
