"""The AWS calls of `awsbatch-mpi doctor` and `setup`, and the executor's `preflight`.

Only this module of `ops/` talks to AWS. Every method reads (or, for `setup` and the S3
probe, writes) one thing and turns botocore errors into `AwsError` with a readable
message; the decisions are made by the pure functions in `checks.py`, `instance_fit.py`
and `stack.py`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from ..batch import clients
from ..batch.clients import describe_environments, describe_queues
from ..batch.queues import environments_of, queue_environment_arns
from ..core.root_volume import LaunchTemplateRef, template_ref
from . import checks, instance_fit, network, outcomes, stack
from .instance_fit import InstanceShape
from .network import SubnetNetwork
from .outcomes import CheckResult


class AwsError(RuntimeError):
    """An AWS call failed; the message says which call and why."""


def error_text(err: BaseException) -> str:
    if isinstance(err, ClientError):
        info = err.response.get("Error", {})
        return f"{info.get('Code', 'Error')}: {info.get('Message', str(err))}"
    if isinstance(err, NoCredentialsError):
        return "no AWS credentials were found"
    return str(err)


def _client_error_says(err: AwsError, text: str) -> bool:
    """Whether `err` (raised by `AwsShell._call`) wraps a `ClientError` mentioning `text`."""
    return isinstance(err.__cause__, ClientError) and text in str(err.__cause__)


class AwsShell:
    """boto3 clients of one session, created on first use."""

    def __init__(self, region: str | None = None, session: Any | None = None) -> None:
        self.session = session or clients.session(region)
        self._clients: dict[str, Any] = {}

    @property
    def region(self) -> str | None:
        return self.session.region_name

    def client(self, service: str) -> Any:
        if service not in self._clients:
            # Doctor and setup answer a person: fail fast instead of retrying for minutes.
            self._clients[service] = clients.client(
                service, purpose=clients.Purpose.INTERACTIVE, from_session=self.session
            )
        return self._clients[service]

    def _call(self, service: str, operation: str, **kwargs: Any) -> Any:
        try:
            return getattr(self.client(service), operation)(**kwargs)
        except (ClientError, BotoCoreError) as err:
            raise AwsError(error_text(err)) from err

    # Identity ---------------------------------------------------------------------------

    def caller_identity(self) -> dict[str, Any]:
        return self._call("sts", "get_caller_identity")

    # Batch ------------------------------------------------------------------------------

    def job_queues(self, names: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Queues by the name or ARN asked for; absent ones are left out."""
        return describe_queues(lambda **kw: self._call("batch", "describe_job_queues", **kw), names)

    def compute_environments(self, refs: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Compute environments by ARN."""
        return describe_environments(
            lambda **kw: self._call("batch", "describe_compute_environments", **kw), refs
        )

    # EC2 --------------------------------------------------------------------------------

    def instance_types(self, patterns: Iterable[str]) -> dict[str, InstanceShape]:
        patterns = sorted(set(patterns))
        if not patterns:
            return {}
        items: list[dict[str, Any]] = []
        try:
            paginator = self.client("ec2").get_paginator("describe_instance_types")
            for page in paginator.paginate(Filters=[{"Name": "instance-type", "Values": patterns}]):
                items.extend(page.get("InstanceTypes", []))
        except (ClientError, BotoCoreError) as err:
            raise AwsError(error_text(err)) from err
        return instance_fit.shapes_from(items)

    def launch_template_version(self, template: Mapping[str, Any]) -> dict[str, Any] | None:
        """The version of a compute environment's `launchTemplate` it would launch with."""
        ref = template_ref(template)
        return None if ref is None else self.launch_template(ref)

    def launch_template(self, ref: LaunchTemplateRef) -> dict[str, Any] | None:
        """The DescribeLaunchTemplateVersions item of one launch template version."""
        try:
            return clients.launch_template_version(self.client("ec2"), ref.request())
        except (ClientError, BotoCoreError) as err:
            raise AwsError(error_text(err)) from err

    def subnet_networks(self, subnet_ids: Iterable[str]) -> dict[str, SubnetNetwork]:
        """Each subnet's ways out (route table, internet/NAT gateway, VPC endpoints)."""
        return network.read_subnets(lambda op, **kw: self._call("ec2", op, **kw), subnet_ids)

    # EFS (the runtime's file system, issue 22) ------------------------------------------

    def file_system(self, file_system_id: str) -> dict[str, Any]:
        """DescribeFileSystems of one file system, with its tags; AwsError when absent."""
        answer = self._call("efs", "describe_file_systems", FileSystemId=file_system_id)
        systems = answer.get("FileSystems") or []
        if not systems:
            raise AwsError(f"EFS file system {file_system_id} does not exist")
        return systems[0]

    def mount_targets(self, file_system_id: str) -> list[dict[str, Any]]:
        answer = self._call("efs", "describe_mount_targets", FileSystemId=file_system_id)
        return list(answer.get("MountTargets") or [])

    def tag_file_system(self, file_system_id: str, key: str, value: str) -> None:
        self._call(
            "efs", "tag_resource", ResourceId=file_system_id, Tags=[{"Key": key, "Value": value}]
        )

    # IAM and S3 -------------------------------------------------------------------------

    def role(self, arn: str) -> dict[str, Any]:
        name = arn.rsplit("/", 1)[-1]
        return self._call("iam", "get_role", RoleName=name)["Role"]

    def probe_s3_prefix(self, uri: str) -> None:
        """Write and delete a small object below the prefix (what jobs will do)."""
        bucket, prefix = checks.parse_s3_uri(uri)
        key = f"{prefix}/.awsbatch-mpi-doctor-{uuid.uuid4().hex[:12]}".lstrip("/")
        self._call("s3", "put_object", Bucket=bucket, Key=key, Body=b"awsbatch-mpi doctor\n")
        self._call("s3", "delete_object", Bucket=bucket, Key=key)

    # CloudFormation ---------------------------------------------------------------------

    def stack(self, name: str) -> dict[str, Any] | None:
        try:
            found = self._call("cloudformation", "describe_stacks", StackName=name)
        except AwsError as err:
            if _client_error_says(err, "does not exist"):
                return None
            raise
        stacks = found.get("Stacks", [])
        return stacks[0] if stacks else None

    def stack_events(self, name: str) -> list[dict[str, Any]]:
        """Newest first, as CloudFormation returns them (first page is enough for progress)."""
        return self._call("cloudformation", "describe_stack_events", StackName=name).get(
            "StackEvents", []
        )

    def deploy(
        self,
        options: stack.StackOptions,
        on_line: Callable[[str], None] = lambda line: None,
        poll_seconds: float = 10.0,
        timeout_seconds: float = 3600.0,
    ) -> dict[str, str]:
        """Create the stack (or update it when it exists), wait, and return its outputs.

        Raises `AwsError` with the failing resources and their reasons when it fails.
        """
        name = options.stack_name
        existing = self.stack(name)
        common: dict[str, Any] = {
            "StackName": name,
            "TemplateBody": stack.template_body(),
            "Parameters": stack.cfn_parameters(options),
            "Capabilities": stack.CAPABILITIES,
            "Tags": stack.cfn_tags(options),
        }
        seen: set[str] = set()
        if existing is not None:
            status = existing.get("StackStatus", "")
            if status == "ROLLBACK_COMPLETE" or not stack.is_finished(status):
                raise AwsError(
                    f"Stack '{name}' exists and is {status}. Wait for it to finish, or delete "
                    f"it with `aws cloudformation delete-stack --stack-name {name}` if it is "
                    "in ROLLBACK_COMPLETE, then run setup again."
                )
            stack.new_events(self.stack_events(name), seen)  # show only this update's events
            try:
                self._call("cloudformation", "update_stack", **common)
            except AwsError as err:
                if _client_error_says(err, "No updates are to be performed"):
                    on_line(f"Stack '{name}' is already up to date.")
                    return stack.outputs_of(existing)
                raise
            on_line(f"Updating stack '{name}' in {self.region} ...")
        else:
            self._call("cloudformation", "create_stack", **common)
            on_line(f"Creating stack '{name}' in {self.region} (this takes a few minutes) ...")
        deadline = time.monotonic() + timeout_seconds
        while True:
            current = self.stack(name)
            status = current.get("StackStatus", "?") if current else "DELETED"
            for event in stack.new_events(self.stack_events(name), seen):
                on_line("  " + stack.event_line(event))
            if stack.is_finished(status):
                break
            if time.monotonic() > deadline:
                raise AwsError(
                    f"Stack '{name}' is still {status} after {timeout_seconds:.0f} s. Follow it "
                    "in the CloudFormation console; run setup again to print its outputs."
                )
            time.sleep(poll_seconds)
        if status not in stack.SUCCESS or current is None:
            raise AwsError(
                stack.failure_message(name, status, self.stack_events(name), self.region or "?")
            )
        return stack.outputs_of(current)


# The executor's preflight ---------------------------------------------------------------


def _readers(batch: Any) -> tuple[Callable[[list[str]], Any], Callable[[list[str]], Any]]:
    """(queues, environments) readers over a boto3 Batch client or the plugin's BatchClient.

    Through a BatchClient the answers are cached for the run (the planner reads the same
    queues again) and the calls share its API budget and are counted.
    """
    if hasattr(batch, "job_queues") and hasattr(batch, "compute_environments"):
        return batch.job_queues, batch.compute_environments
    return (
        lambda names: describe_queues(batch.describe_job_queues, names),
        lambda refs: describe_environments(batch.describe_compute_environments, refs),
    )


def preflight(
    batch: Any, queue_names: Iterable[str], fallback_queue: str | None = None
) -> list[CheckResult]:
    """The cheap start-up checks of the executor: each queue and its compute environments.

    `batch` is a boto3 Batch client or the plugin's `BatchClient`; two Batch calls in all
    (DescribeJobQueues, DescribeComputeEnvironments) for up to 100 queues. Returns one
    `CheckResult` per queue and per compute environment (a FAIL means jobs sent there would
    be refused or never start); a failed AWS call becomes a FAIL naming the call. The
    `fallback_queue` (--awsbatch-mpi-fallback-job-queue) must also be on-demand.
    """
    names = [n for n in dict.fromkeys([*queue_names, fallback_queue]) if n]
    if not names:
        return []
    try:
        read_queues, read_environments = _readers(batch)
        queues = read_queues(names)
    except (ClientError, BotoCoreError) as err:
        return [
            outcomes.failed(
                "queues",
                f"Could not describe the job queues {', '.join(names)} ({error_text(err)}). "
                "Check your credentials, region and the batch:DescribeJobQueues permission.",
            )
        ]
    region = getattr(getattr(batch, "meta", None), "region_name", None) or getattr(
        batch, "region", None
    )
    results = [checks.check_queue(name, queues.get(name), region) for name in names]
    refs = [ref for q in queues.values() for ref in queue_environment_arns(q)]
    if not refs:
        return results
    try:
        envs = read_environments(refs)
    except (ClientError, BotoCoreError) as err:
        return [
            *results,
            outcomes.failed(
                "compute environments",
                f"Could not describe the queues' compute environments ({error_text(err)}). "
                "Check the batch:DescribeComputeEnvironments permission.",
            ),
        ]
    seen: set[str] = set()
    for name in names:
        queue = queues.get(name)
        if queue is None:
            continue
        for env in environments_of(queue, envs):
            if env["computeEnvironmentArn"] in seen:
                continue
            seen.add(env["computeEnvironmentArn"])
            results.extend(checks.check_compute_environment(env))
    if fallback_queue and fallback_queue in queues:
        fallback_envs = environments_of(queues[fallback_queue], envs)
        results.append(checks.check_fallback_queue(fallback_queue, fallback_envs))
    return results
