"""Pure checks of an AWS Batch setup, over data already fetched from the describe_* APIs:
credentials, queues and compute environments, the job role and the S3 prefix.

Every function takes plain dicts shaped like boto3's answers (DescribeJobQueues,
DescribeComputeEnvironments, GetRole, ...) and returns `CheckResult`s. Nothing here calls AWS,
so every check is unit-tested with hand-made dicts or moto's answers. What the instances of a
queue can place is in `instance_fit.py`; the GPU and multi-node queues in `gpu_mpi_checks.py`.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any

from ..batch.queues import capacity_type
from .outcomes import CheckResult, failed, passed, warned


def check_identity(
    identity: Mapping[str, Any] | None, region: str | None, error: str | None = None
) -> list[CheckResult]:
    """sts:GetCallerIdentity answered (credentials work) and a region is known."""
    results: list[CheckResult] = []
    if not region:
        results.append(
            failed(
                "region",
                "No AWS region is configured. Pass --region, or set AWS_DEFAULT_REGION or "
                "a region in your AWS profile.",
            )
        )
    else:
        results.append(passed("region", f"Using region {region}."))
    if identity is None and error and "Could not connect" in error:
        results.append(
            failed(
                "credentials",
                f"AWS could not be reached to check the credentials ({error}). Check the "
                "network, a proxy, or AWS_ENDPOINT_URL, and run the doctor again.",
            )
        )
    elif identity is None:
        results.append(
            failed(
                "credentials",
                f"AWS credentials do not work ({error or 'no answer'}). Log in (aws sso login, "
                "AWS_PROFILE, or access keys) and run the doctor again.",
            )
        )
    else:
        results.append(
            passed(
                "credentials",
                f"Signed in as {identity.get('Arn', '?')} "
                f"(account {identity.get('Account', '?')}).",
            )
        )
    return results


def check_queue(name: str, queue: Mapping[str, Any] | None, region: str | None) -> CheckResult:
    """The queue exists, is ENABLED and VALID, and has compute environments."""
    check = f"queue {name}"
    if queue is None:
        return failed(
            check,
            f"Job queue '{name}' does not exist in region {region or '?'}. Check the name and "
            "the region, or create the queues with `awsbatch-mpi setup`.",
        )
    state, status = queue.get("state"), queue.get("status")
    if state != "ENABLED":
        return failed(
            check,
            f"Job queue '{name}' is {state}: it accepts no jobs. Enable it with `aws batch "
            f"update-job-queue --job-queue {name} --state ENABLED`.",
        )
    if status != "VALID":
        reason = queue.get("statusReason") or "no reason given"
        return failed(
            check,
            f"Job queue '{name}' is {status} ({reason}). Fix the queue's compute "
            "environments, or recreate the queue.",
        )
    if not queue.get("computeEnvironmentOrder"):
        return failed(
            check,
            f"Job queue '{name}' has no compute environment, so its jobs can never run. Attach "
            "one with `aws batch update-job-queue --compute-environment-order ...`.",
        )
    return passed(check, "The queue is ENABLED and VALID.")


SPOT_CAPACITY = ("SPOT", "FARGATE_SPOT")


def check_fallback_queue(name: str, envs: Sequence[Mapping[str, Any]]) -> CheckResult:
    """The fallback queue runs on demand: a job moved there after a Spot reclaim must not be
    reclaimed again (any Spot environment of the queue may take it)."""
    check = f"fallback queue {name}"
    spot = [
        str(env.get("computeEnvironmentName", "?"))
        for env in envs
        if capacity_type(env) in SPOT_CAPACITY
    ]
    if spot:
        return failed(
            check,
            f"Fallback queue '{name}' has Spot compute environment(s) {', '.join(spot)}, so a "
            "job resubmitted there after a Spot reclaim can lose its host again. Use a queue "
            "whose compute environments are all on-demand (EC2 or FARGATE), such as the "
            "'<stack>-ondemand' queue that `awsbatch-mpi setup` creates.",
        )
    if not envs:
        return failed(check, f"Fallback queue '{name}' has no compute environment.")
    return passed(
        check,
        f"Fallback queue '{name}' is on-demand: a job whose Spot host was reclaimed on its "
        "last attempt is submitted once more there.",
    )


def check_compute_environment(env: Mapping[str, Any]) -> list[CheckResult]:
    """The environment is VALID, ENABLED and may start instances (maxvCpus > 0)."""
    name = env.get("computeEnvironmentName", env.get("computeEnvironmentArn", "?"))
    check = f"compute environment {name}"
    results: list[CheckResult] = []
    status, state = env.get("status"), env.get("state")
    if status != "VALID":
        reason = env.get("statusReason") or "no reason given"
        results.append(
            failed(
                check,
                f"Compute environment '{name}' is {status} ({reason}). Fix what the reason "
                "names (often the instance role, the subnets or the service role) and update "
                "or recreate the environment.",
            )
        )
    if state != "ENABLED":
        results.append(
            failed(
                check,
                f"Compute environment '{name}' is {state}: it starts no instances. Enable it "
                f"with `aws batch update-compute-environment --compute-environment {name} "
                "--state ENABLED`.",
            )
        )
    resources = env.get("computeResources")
    if env.get("type") == "UNMANAGED" or resources is None:
        results.append(
            warned(
                check,
                f"Compute environment '{name}' is UNMANAGED: Batch only uses the instances you "
                "register in its ECS cluster; make sure some are running.",
            )
        )
    elif int(resources.get("maxvCpus", 0)) <= 0:
        results.append(
            failed(
                check,
                f"Compute environment '{name}' has maxvCpus "
                f"{resources.get('maxvCpus', 0)}: no job can ever start. Raise it with `aws "
                f"batch update-compute-environment --compute-environment {name} "
                "--compute-resources maxvCpus=<n>`.",
            )
        )
    if not results:
        results.append(
            passed(
                check,
                f"The compute environment is ENABLED and VALID ({capacity_type(env)}, up to "
                f"{resources.get('maxvCpus')} vCPUs).",
            )
        )
    return results


def _trust_document(role: Mapping[str, Any]) -> dict[str, Any]:
    document = role.get("AssumeRolePolicyDocument") or {}
    if isinstance(document, str):
        document = json.loads(urllib.parse.unquote(document))
    return document


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def trusts_service(role: Mapping[str, Any], service: str) -> bool:
    for statement in _as_list(_trust_document(role).get("Statement")):
        if statement.get("Effect") != "Allow":
            continue
        actions = _as_list(statement.get("Action"))
        if not any(a in ("sts:AssumeRole", "sts:*", "*") for a in actions):
            continue
        principal = statement.get("Principal") or {}
        if isinstance(principal, dict) and service in _as_list(principal.get("Service")):
            return True
    return False


def check_job_role(arn: str, role: Mapping[str, Any] | None, error: str | None) -> CheckResult:
    """The job role exists and ECS tasks (the Batch containers) may assume it."""
    check = "job role"
    if role is None:
        return failed(
            check,
            f"The job role {arn} could not be read ({error or 'not found'}). Check the ARN "
            "(--awsbatch-mpi-job-role-arn), or create the role with `awsbatch-mpi setup`.",
        )
    if not trusts_service(role, "ecs-tasks.amazonaws.com"):
        return failed(
            check,
            f"The job role {arn} does not trust ecs-tasks.amazonaws.com, so Batch containers "
            "cannot assume it and get no credentials. Add a trust statement allowing "
            "sts:AssumeRole for the service principal ecs-tasks.amazonaws.com.",
        )
    return passed(check, f"The job role {arn} exists and trusts ecs-tasks.amazonaws.com.")


def check_s3_prefix(uri: str, error: str | None) -> CheckResult:
    check = "s3 prefix"
    if error:
        return failed(
            check,
            f"Could not write and delete a test object under {uri} ({error}). Check that the "
            "bucket exists in this account and that you may s3:PutObject and s3:DeleteObject "
            "there.",
        )
    return passed(check, f"{uri} is writable (a test object was written and deleted).")


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/prefix` → (bucket, prefix without slashes at the ends)."""
    if not uri.startswith("s3://") or len(uri) <= 5:
        raise ValueError(f"'{uri}' is not an S3 URI; write it as s3://bucket/prefix.")
    bucket, _, prefix = uri[5:].partition("/")
    if not bucket:
        raise ValueError(f"'{uri}' names no bucket; write it as s3://bucket/prefix.")
    return bucket, prefix.strip("/")
