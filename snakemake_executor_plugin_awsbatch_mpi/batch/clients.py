"""The one place that builds AWS sessions and clients, and reads describe_* APIs in chunks.

Every part of the plugin (the executor's `BatchClient`, `doctor`/`setup`, `status`/`logs`,
the array-job child) gets its clients here, so there is one region rule and one retry policy:

- Region: the one given (a setting or `--region`), else boto3's own chain
  (`AWS_REGION`/`AWS_DEFAULT_REGION`, the profile). `AWS_ENDPOINT_URL` is honoured by boto3
  itself, which is how the local emulation is reached.
- Retries: botocore's `adaptive` mode, which also slows the client down when the account is
  throttled. A run retries long (it must not fail on a busy account); commands that answer
  a person at a terminal (`doctor`, `setup`, `status`, `logs`) retry a little and time out
  early, so a wrong region or missing network is reported in seconds, not minutes.

Batch's Describe* calls take at most 100 ids; `chunks` and `describe_in_chunks` are the one
implementation of that rule.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from enum import Enum
from typing import Any

import boto3
from botocore.config import Config

# Batch's DescribeJobs, DescribeJobQueues and DescribeComputeEnvironments take up to 100 ids.
DESCRIBE_CHUNK = 100

USER_AGENT = "snakemake-executor-plugin-awsbatch-mpi"


class Purpose(Enum):
    """Who waits for the answer, which decides how long a call may retry."""

    RUN = "run"  # the executor during a workflow run: retry long, never fail on throttling
    SIDE = "side"  # S3 and CloudWatch Logs reads and writes of a run
    INTERACTIVE = "interactive"  # a command a person waits for: fail fast


_ATTEMPTS = {Purpose.RUN: 10, Purpose.SIDE: 5, Purpose.INTERACTIVE: 3}


def config(purpose: Purpose = Purpose.RUN) -> Config:
    """The botocore configuration of every client the plugin creates."""
    if purpose is Purpose.INTERACTIVE:
        return Config(
            retries={"mode": "adaptive", "max_attempts": _ATTEMPTS[purpose]},
            connect_timeout=5,
            read_timeout=30,
            user_agent_extra=f"{USER_AGENT}-ops",
        )
    return Config(
        retries={"mode": "adaptive", "max_attempts": _ATTEMPTS[purpose]},
        user_agent_extra=USER_AGENT,
    )


def session(region: str | None = None) -> Any:
    """A boto3 session in `region`, or in boto3's default region when None."""
    return boto3.session.Session(region_name=region)


def client(
    service: str,
    region: str | None = None,
    purpose: Purpose = Purpose.RUN,
    from_session: Any | None = None,
) -> Any:
    """A client of `service` with the plugin's retry policy (from `from_session` if given)."""
    return (from_session or session(region)).client(service, config=config(purpose))


def chunks(ids: Iterable[str], size: int = DESCRIBE_CHUNK) -> Iterator[list[str]]:
    """The distinct ids, in order, `size` at a time (one Describe* call each)."""
    unique = list(dict.fromkeys(ids))
    for start in range(0, len(unique), size):
        yield unique[start : start + size]


def describe_in_chunks(
    call: Callable[..., Any], parameter: str, answer_key: str, ids: Iterable[str]
) -> list[dict[str, Any]]:
    """Every item a Describe* call returns for `ids`, one call per 100 distinct ids.

    `call(**{parameter: chunk})` is made for each chunk and `answer[answer_key]` collected,
    e.g. `describe_in_chunks(batch.describe_jobs, "jobs", "jobs", ids)`.
    """
    found: list[dict[str, Any]] = []
    for chunk in chunks(ids):
        found.extend(call(**{parameter: chunk}).get(answer_key, []))
    return found


def describe_queues(call: Callable[..., Any], names: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Queues by the name or ARN asked for; absent ones are left out."""
    names = list(dict.fromkeys(names))
    return {
        name: queue
        for queue in describe_in_chunks(call, "jobQueues", "jobQueues", names)
        for name in names
        if name in (queue.get("jobQueueName"), queue.get("jobQueueArn"))
    }


def describe_environments(
    call: Callable[..., Any], refs: Iterable[str]
) -> dict[str, dict[str, Any]]:
    """Compute environments by ARN."""
    envs = describe_in_chunks(call, "computeEnvironments", "computeEnvironments", refs)
    return {env["computeEnvironmentArn"]: env for env in envs}


def launch_template_version(ec2: Any, params: dict[str, Any]) -> dict[str, Any] | None:
    """The one DescribeLaunchTemplateVersions item `params` names (None when there is none)."""
    versions = ec2.describe_launch_template_versions(**params).get("LaunchTemplateVersions", [])
    return versions[0] if versions else None


__all__ = [
    "DESCRIBE_CHUNK",
    "Purpose",
    "chunks",
    "client",
    "config",
    "describe_environments",
    "describe_in_chunks",
    "describe_queues",
    "launch_template_version",
    "session",
]
