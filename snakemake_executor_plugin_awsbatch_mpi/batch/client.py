"""The only module that calls the AWS Batch API.

One `BatchClient` per run. AWS allows each account and region 50 Batch calls per second and
answers the rest with HTTP 429; the client paces itself by that quota once:

- `Pace` spaces the calls that are not status reads (SubmitJob, job definitions, queues,
  TerminateJob) at most `calls_per_second` × `PACED_SHARE` per second;
- DescribeJobs is paced by the status cadence (`cadence.StatusCadence`), which plans each
  check within the rest of the budget (`status_calls_per_second`);
- botocore's `adaptive` retry mode (see `clients.config`) is the only thing that reacts to
  a 429: it retries with backoff and slows the client when other tools share the account.

`calls_per_second` (`--awsbatch-mpi-api-calls-per-second`, default 40: the quota of 50 less
a fifth for headroom) is the ceiling of the whole client. With array jobs (the default) a
run submits few requests anyway. Job definitions and queue descriptions are cached, so a
1,000-job run of one rule costs one DescribeJobDefinitions (and at most one
RegisterJobDefinition).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..core.root_volume import LaunchTemplateRef
from ..core.spec import QueueInfo
from . import clients
from .queues import environments_of, launch_template_refs, queue_environment_arns, queue_info_from

# Paced by the status cadence, not by `Pace` (see the module docstring).
UNPACED = frozenset({"describe_jobs"})
# The share of `calls_per_second` for everything but status reads; the rest is the status
# cadence's. Together they stay at the setting, below AWS's quota.
PACED_SHARE = 0.75
DEFAULT_CALLS_PER_SECOND = 40.0


class BatchSetupError(RuntimeError):
    """A queue or job definition problem the user must fix; raised before jobs are submitted."""


class Pace:
    """Calls spaced at least 1/`rate` seconds apart, across threads.

    Not a token bucket: an idle client saves no burst, so the client never sends more than
    `rate` calls in any second, which is what AWS's quota counts. Each caller reserves the
    next free slot under the lock and sleeps outside it.
    """

    def __init__(self, rate: float) -> None:
        if rate <= 0:
            raise ValueError(f"A pace needs a positive rate, not {rate}.")
        self.rate = float(rate)
        self.gap = 1.0 / self.rate
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> float:
        """Block until this call's slot; the seconds waited."""
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next)
            self._next = slot + self.gap
        if slot > now:
            time.sleep(slot - now)
        return max(0.0, slot - now)


class BatchClient:
    """Thin wrapper over boto3's Batch client with caching, pacing and call counting."""

    def __init__(
        self,
        region: str | None = None,
        calls_per_second: float = DEFAULT_CALLS_PER_SECOND,
        client: Any | None = None,
        logs_client: Any | None = None,
        s3_client: Any | None = None,
        ec2_client: Any | None = None,
    ) -> None:
        session = clients.session(region) if client is None else None
        self.client = client or clients.client("batch", from_session=session)
        self._logs_client = logs_client
        self._s3_client = s3_client
        self._ec2_client = ec2_client
        self._session = session
        self.region: str = self.client.meta.region_name
        self.pace = Pace(calls_per_second * PACED_SHARE)
        # What the status cadence may spend on DescribeJobs per second.
        self.status_calls_per_second = calls_per_second * (1 - PACED_SHARE)
        self.calls: Counter[str] = Counter()
        self._queues: dict[str, QueueInfo] = {}
        # Raw describe answers, shared by the preflight and the planner (one call each).
        self._queue_answers: dict[str, dict[str, Any] | None] = {}
        self._environment_answers: dict[str, dict[str, Any]] = {}
        # Launch template versions by reference; unreadable ones are left out (see queue_info).
        self._templates: dict[LaunchTemplateRef, dict[str, Any] | None] = {}
        self._templates_tried: set[LaunchTemplateRef] = set()
        # When each queue's environments were last described for a stuck-queue warning.
        self._environments_read: dict[str, float] = {}
        self._job_definitions: dict[str, str] = {}
        self._lock = threading.Lock()

    def _call(self, operation: str, **kwargs: Any) -> Any:
        if operation not in UNPACED:
            self.pace.wait()
        self.calls[operation] += 1
        return getattr(self.client, operation)(**kwargs)

    @property
    def logs_client(self) -> Any:
        if self._logs_client is None:
            self._logs_client = clients.client(
                "logs", self.region, clients.Purpose.SIDE, from_session=self._session
            )
        return self._logs_client

    @property
    def s3_client(self) -> Any:
        if self._s3_client is None:
            self._s3_client = clients.client(
                "s3", self.region, clients.Purpose.SIDE, from_session=self._session
            )
        return self._s3_client

    @property
    def ec2_client(self) -> Any:
        if self._ec2_client is None:
            self._ec2_client = clients.client(
                "ec2", self.region, clients.Purpose.SIDE, from_session=self._session
            )
        return self._ec2_client

    # Queues -------------------------------------------------------------------------------

    def job_queues(self, names: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Queues by the name or ARN asked for (absent ones left out), each described once.

        The executor's preflight and the planner both read queues through here, so a run
        makes one DescribeJobQueues for its queues, not one per reader.
        """
        names = list(dict.fromkeys(names))
        with self._lock:
            missing = [n for n in names if n not in self._queue_answers]
        if missing:
            found = clients.describe_queues(
                lambda **kw: self._call("describe_job_queues", **kw), missing
            )
            with self._lock:
                for name in missing:
                    self._queue_answers[name] = found.get(name)
        with self._lock:
            return {n: q for n in names if (q := self._queue_answers.get(n)) is not None}

    def compute_environments(self, refs: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Compute environments by ARN (every one known so far), each described once per run."""
        with self._lock:
            known = set(self._environment_answers)
            known |= {
                e.get("computeEnvironmentName", "") for e in self._environment_answers.values()
            }
            missing = [r for r in dict.fromkeys(refs) if r not in known]
        if missing:
            found = clients.describe_environments(
                lambda **kw: self._call("describe_compute_environments", **kw), missing
            )
            with self._lock:
                for env in found.values():
                    self._environment_answers[env["computeEnvironmentArn"]] = env
        with self._lock:
            return dict(self._environment_answers)

    def current_environments(self, queue_ref: str, max_age_seconds: float) -> list[dict[str, Any]]:
        """A queue's compute environments as Batch describes them now, in the queue's order.

        For the stuck-queue warning: their state and status change while a run goes on, so
        they are described again, but at most once per `max_age_seconds` per queue (and the
        queue itself once per run). Raises `BatchSetupError` when the queue is gone.
        """
        queue = self.job_queues([queue_ref]).get(queue_ref)
        if queue is None:
            raise BatchSetupError(f"Job queue '{queue_ref}' does not exist any more.")
        refs = queue_environment_arns(queue)
        now = time.monotonic()
        with self._lock:
            read = self._environments_read.get(queue_ref)
        if refs and (read is None or now - read >= max_age_seconds):
            found = clients.describe_environments(
                lambda **kw: self._call("describe_compute_environments", **kw), refs
            )
            with self._lock:
                self._environment_answers.update(found)
                self._environments_read[queue_ref] = now
        with self._lock:
            known = dict(self._environment_answers)
        return list(environments_of(queue, known))

    def queue_info(self, name: str) -> QueueInfo:
        """Describe a queue and its compute environments once per run."""
        with self._lock:
            if name in self._queues:
                return self._queues[name]
        queue = self.job_queues([name]).get(name)
        if queue is None:
            raise BatchSetupError(
                f"Job queue '{name}' does not exist in region {self.region}. Check the queue "
                "name (--awsbatch-mpi-job-queue, --awsbatch-mpi-gpu-job-queue or the rule's "
                "awsbatch_queue) and the region (--awsbatch-mpi-region or AWS_DEFAULT_REGION)."
            )
        refs = queue_environment_arns(queue)
        envs = environments_of(queue, self.compute_environments(refs)) if refs else []
        info = queue_info_from(name, queue, envs, self.launch_templates(launch_template_refs(envs)))
        with self._lock:
            self._queues[name] = info
        return info

    def launch_templates(
        self, refs: Iterable[LaunchTemplateRef]
    ) -> dict[LaunchTemplateRef, dict[str, Any] | None]:
        """The launch template versions the compute environments use (their root volume),
        each read once per run; one that cannot be read (no ec2:DescribeLaunchTemplateVersions
        permission, say) is left out, so its volume is unknown and not checked."""
        for ref in refs:
            with self._lock:
                if ref in self._templates_tried:
                    continue
                self._templates_tried.add(ref)
            try:
                version = clients.launch_template_version(self.ec2_client, ref.request())
            except (ClientError, BotoCoreError):
                continue  # `doctor` names the template and the permission
            finally:
                self.calls["describe_launch_template_versions"] += 1
            with self._lock:
                self._templates[ref] = version
        with self._lock:
            return dict(self._templates)

    # Job definitions ---------------------------------------------------------------------

    def existing_job_definition(self, name: str) -> str | None:
        """The ARN of the newest ACTIVE revision of `name`, if any."""
        answer = self._call("describe_job_definitions", jobDefinitionName=name, status="ACTIVE")
        revisions = [
            d for d in answer.get("jobDefinitions", []) if d.get("status", "ACTIVE") == "ACTIVE"
        ]
        if not revisions:
            return None
        return max(revisions, key=lambda d: d.get("revision", 0))["jobDefinitionArn"]

    def ensure_job_definition(self, payload: dict[str, Any], attempts: int = 8) -> str:
        """Reuse the definition named by the payload's content hash, registering it if absent.

        Registration is eventually consistent: wait until the new revision is visible, so
        that the very first SubmitJob does not fail with "job definition not found".
        """
        name = payload["jobDefinitionName"]
        with self._lock:
            if name in self._job_definitions:
                return self._job_definitions[name]
        arn = self.existing_job_definition(name)
        if arn is None:
            arn = self._call("register_job_definition", **payload)["jobDefinitionArn"]
            delay = 0.2
            for _ in range(attempts):
                if self.existing_job_definition(name):
                    break
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
        with self._lock:
            self._job_definitions[name] = arn
        return arn

    def resolve_job_definition(self, ref: str) -> str:
        """Check that a user-named definition (`name`, `name:rev` or ARN) exists."""
        with self._lock:
            if ref in self._job_definitions:
                return self._job_definitions[ref]
        answer = self._call("describe_job_definitions", jobDefinitions=[ref])
        found = answer.get("jobDefinitions", [])
        if not found and ":" not in ref:
            found = self._call(
                "describe_job_definitions", jobDefinitionName=ref, status="ACTIVE"
            ).get("jobDefinitions", [])
        if not found:
            raise BatchSetupError(
                f"Job definition '{ref}' (resources: awsbatch_job_definition) does not exist "
                f"in region {self.region}; register it first or remove the resource."
            )
        arn = max(found, key=lambda d: d.get("revision", 0))["jobDefinitionArn"]
        with self._lock:
            self._job_definitions[ref] = arn
        return arn

    # Jobs --------------------------------------------------------------------------------

    def submit(self, payload: dict[str, Any]) -> str:
        return self._call("submit_job", **payload)["jobId"]

    def describe(self, job_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Descriptions by job id, one DescribeJobs call per 100 ids."""
        answers = clients.describe_in_chunks(
            lambda **kw: self._call("describe_jobs", **kw), "jobs", "jobs", job_ids
        )
        return {desc["jobId"]: desc for desc in answers}

    def terminate(self, job_ids: Iterable[str], reason: str) -> tuple[int, list[str]]:
        """TerminateJob each id (CancelJob would leave RUNNING jobs running)."""
        stopped, failed = 0, []
        for job_id in job_ids:
            try:
                self._call("terminate_job", jobId=job_id, reason=reason)
                stopped += 1
            except ClientError as err:
                failed.append(f"{job_id}: {err}")
        return stopped, failed

    # S3 (array command maps, MPI rendezvous keys) ----------------------------------------

    def put_object(self, url: str, body: bytes) -> None:
        bucket, _, key = url.removeprefix("s3://").partition("/")
        self.s3_client.put_object(Bucket=bucket, Key=key, Body=body)
        self.calls["s3_put_object"] += 1

    def delete_object(self, url: str) -> None:
        """Delete an object; deleting one that is already gone is not an error in S3."""
        bucket, _, key = url.removeprefix("s3://").partition("/")
        self.s3_client.delete_object(Bucket=bucket, Key=key)
        self.calls["s3_delete_object"] += 1

    def object_tail(self, url: str, max_bytes: int) -> tuple[bytes, int]:
        """The last `max_bytes` of an S3 object and its full size (one ranged GET).

        Reads failed jobs' `log:` files: a rule may log gigabytes, so only the end is read.
        An empty object has no byte range to ask for; S3 answers that with InvalidRange.
        """
        bucket, _, key = url.removeprefix("s3://").partition("/")
        self.calls["s3_get_object"] += 1
        try:
            answer = self.s3_client.get_object(Bucket=bucket, Key=key, Range=f"bytes=-{max_bytes}")
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") == "InvalidRange":
                return b"", 0
            raise
        body = answer["Body"].read()
        # "bytes 12-99/100"; absent when the server ignored the range and sent everything.
        total = str(answer.get("ContentRange") or "").rpartition("/")[2]
        return body[-max_bytes:], int(total) if total.isdigit() else len(body)

    # Logs --------------------------------------------------------------------------------

    def log_tail(self, group: str, stream: str, lines: int) -> list[str]:
        """The last `lines` messages of a CloudWatch stream (only ever read for failed jobs)."""
        self.calls["get_log_events"] += 1
        answer = self.logs_client.get_log_events(
            logGroupName=group, logStreamName=stream, limit=lines, startFromHead=False
        )
        return [event.get("message", "") for event in answer.get("events", [])]


__all__ = ["BatchClient", "BatchSetupError", "ClientError", "DEFAULT_CALLS_PER_SECOND", "Pace"]
