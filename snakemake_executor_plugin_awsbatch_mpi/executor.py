"""The Snakemake `RemoteExecutor`: glue between Snakemake's scheduler and the Batch shell.

Everything that decides *what* to send is in `core/` (the planner and the pure translation);
reading Snakemake's jobs is `snakemake_jobs`; everything that talks to AWS is in `batch/`
(`BatchClient`, status parsing, logs, runs). This module only wires them together,
reports to Snakemake and keeps the per-run state (warnings given, jobs Batch has forgotten).
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections import Counter
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from snakemake_interface_common.exceptions import ApiError, WorkflowError
from snakemake_interface_executor_plugins.executors.base import SubmittedJobInfo
from snakemake_interface_executor_plugins.executors.remote import RemoteExecutor
from snakemake_interface_executor_plugins.jobs import JobExecutorInterface

from . import snakemake_internals as internals
from .batch import clients
from .batch.cadence import StatusCadence, observed, slowest_gap
from .batch.client import BatchClient, BatchSetupError
from .batch.logs import fetch_tails
from .batch.model import validate_request
from .batch.rule_logs import fetch_rule_logs, rule_log_lines
from .batch.runnable import RunnableMonitor
from .batch.runs import record_submission
from .batch.status import (
    Outcome,
    attempt_reason,
    failure,
    failure_message,
    finished_attempts,
    lost_to_spot,
    outcome,
)
from .core.array_jobs import array_spec, command_map, group_for_arrays
from .core.command import job_cores
from .core.dependencies import MAX_DEPENDS_ON, ProducerMap, reduce_dependencies
from .core.fallback import PLANNED_JOB_ID, fallback_queue_of
from .core.images import image_warning, runs_in_snakemake_image
from .core.jobdef import barrier_payload, barrier_shape, register_payload, submit_payload
from .core.planner import (
    DEPENDS_ON_ROOM,
    Environment,
    JobPlan,
    PlanError,
    dropped_warning,
    plan_job,
    split_environment,
)
from .core.request import JobRequest, translation_settings
from .core.routing import resolve_queue
from .core.spec import JobSpec, ResourceError
from .mpi import ENV_KEY_URI
from .mpi.key import key_uri, new_key
from .ops import Status, has_failures, preflight
from .settings import SettingsError, check_settings
from .snakemake_jobs import (
    job_command,
    job_request,
    local_file_notices,
    mixed_group_images,
    refusals_of,
)

# A job Batch does not return for this many consecutive checks, spanning at least this many
# seconds (checks can come every second now), is reported as failed.
MAX_MISSING_CHECKS = 5
MIN_MISSING_SECONDS = 60.0
# Consecutive DescribeJobs failures (after botocore's own retries) before giving up.
MAX_DESCRIBE_FAILURES = 10


class RunRefused(ApiError):
    """The run cannot start; the message says why and what to do, and stands alone.

    Snakemake prints a WorkflowError with the frames of code outside Snakemake under it (a
    stray `File ".../executor.py", line N, in __post_init__`), but an ApiError as
    "Error: <message>" only.
    """


class Executor(RemoteExecutor):
    def __post_init__(self) -> None:
        settings = self.workflow.executor_settings
        self.settings = settings
        try:
            self._start(settings)
        except WorkflowError as err:
            self._remove_source_archive()
            raise RunRefused(str(err)) from None
        self.logger.info(
            f"AWS Batch run {self.run_id} in region {self.batch.region}: jobs go to queue "
            f"'{settings.job_queue}', tagged snakemake-run-id={self.run_id}. Follow it with "
            f"`awsbatch-mpi status --run {self.run_id}`."
        )

    def _start(self, settings: Any) -> None:
        """Check everything that can be checked before the first SubmitJob."""
        try:
            check_settings(settings)
            internals.check_executor(self.workflow, self.dag)
        except (SettingsError, internals.SnakemakeInternalsError) as err:
            raise WorkflowError(str(err)) from None
        self.run_id = uuid.uuid4().hex[:16]
        self.batch = BatchClient(
            region=settings.region, calls_per_second=settings.api_calls_per_second
        )
        # The plugin plans its own status checks (see batch/cadence.py).
        self.cadence = StatusCadence(
            slowest=slowest_gap(
                self.workflow.remote_execution_settings.seconds_between_status_checks
            ),
            calls_per_second=self.batch.status_calls_per_second,
        )
        self._last_submission: float | None = None
        # Last descriptions of ended jobs: the end-of-run report reuses them.
        self._ended: dict[str, dict[str, Any]] = {}
        self.translation = dataclasses.replace(
            translation_settings(settings, self.workflow.remote_execution_settings.container_image),
            snakemake_runs_containers=internals.snakemake_runs_containers(self.workflow),
        )
        self.workflow_name = Path(self.workflow.workdir_init).name or "workflow"
        self._warned: set[str] = set()
        self._missing: Counter[str] = Counter()
        self._missing_since: dict[str, float] = {}
        self._describe_failures = 0
        self.producers = ProducerMap()
        self._attempts_seen: dict[str, int] = {}
        self._environment: Environment | None = None
        self._image_rules: set[str] = set()  # rules whose jobs run in Snakemake's image
        self._runnable = RunnableMonitor(self.batch, settings.runnable_warning, self.logger.warning)
        self.immediate_submit = bool(self.workflow.remote_execution_settings.immediate_submit)
        self._preflight()
        self._validate_dag()
        if self.immediate_submit:
            self._keep_source_archive()

    def _remove_source_archive(self) -> None:
        """A refused run leaves nothing behind.

        Snakemake uploads the sources just before it creates the executor and removes them
        only after scheduling, so a refusal here would leave the archive in S3. It is deleted
        as one object: Snakemake's own cleanup goes through the S3 storage plugin, which also
        deletes the bucket when it ends up empty.
        """
        query = internals.source_archive_query(self.workflow)
        if not query.startswith("s3://"):
            return
        bucket, _, key = query.removeprefix("s3://").partition("/")
        try:
            batch = getattr(self, "batch", None)
            s3 = (
                batch.s3_client
                if batch is not None
                else clients.client("s3", self.settings.region, clients.Purpose.SIDE)
            )
            s3.delete_object(Bucket=bucket, Key=key)
        except (ClientError, BotoCoreError) as err:
            self.logger.warning(f"Could not remove the uploaded workflow sources {query}: {err}")

    def _keep_source_archive(self) -> None:
        """Under --immediate-submit, keep the uploaded workflow sources in S3.

        Snakemake 9 removes the source archive when scheduling ends, but with
        --immediate-submit that is when the jobs have only been queued in Batch: they would
        all fail to deploy the sources (and the S3 plugin even deletes the emptied bucket).
        """
        internals.keep_source_archive(self.workflow)
        self.logger.info(
            "--immediate-submit: the workflow source archive stays under the storage "
            "prefix so that jobs queued in Batch can still deploy it; delete "
            "snakemake-workflow-sources.*.tar.xz there once the run is over."
        )

    # Validation --------------------------------------------------------------------------

    def _validate_dag(self) -> None:
        """Plan every job that will run, with the submission's own code, before the first one.

        Resources are re-evaluated without caching them on the job (a callable may depend on
        input sizes that are not known yet; such jobs are planned again when submitted).
        """
        jobs = internals.needrun_jobs(self.dag)
        problems = refusals_of(jobs)
        if problems:
            raise WorkflowError("\n".join(problems) + " Nothing was submitted.")
        if self.immediate_submit:
            self._check_immediate_submit(jobs)
        for notice in local_file_notices(jobs, self.workflow):
            self._warn_once(notice, notice)
        seen: set[tuple[str, str]] = set()
        problems = mixed_group_images(jobs)  # a group job is one container: one image
        if problems:
            raise WorkflowError("\n".join(problems) + " Nothing was submitted.")
        for job in jobs:
            for single in job.jobs if job.is_group() else [job]:
                try:
                    resources = internals.evaluated_resources(single)
                except Exception:  # noqa: BLE001 - evaluated again at submission
                    continue
                request = job_request(single, resources)
                key = (request.rule, repr(sorted(request.resources.items(), key=str)))
                if key in seen:
                    continue
                seen.add(key)
                # A fresh key URI, as at submission: nothing is written or sent.
                self._plan(job, request, self._mpi_key_uri(), before_submission=True)
                fallback = fallback_queue_of(request, self.translation)
                if fallback and not self.immediate_submit:
                    self._plan(
                        job, request, "", True, queue_name=fallback, fallback_of=PLANNED_JOB_ID
                    )
        if self.immediate_submit and self.settings.fallback_job_queue:
            self.logger.warning(
                "--awsbatch-mpi-fallback-job-queue is not used with --immediate-submit: Batch "
                "runs the jobs and their dependents by itself, so a job whose Spot host was "
                "reclaimed cannot be submitted again. Run without --immediate-submit to use it."
            )
        image = image_warning(self.translation.default_image, self._image_rules)
        if image:
            self._warn_once("image", image)

    def _preflight(self) -> None:
        """Cheap checks of the configured queues: refuse to submit jobs that can never run."""
        queues = [
            q
            for q in (
                self.settings.job_queue,
                self.settings.gpu_job_queue,
                self.settings.multinode_job_queue,
            )
            if q
        ]
        results = preflight(
            self.batch, list(dict.fromkeys(queues)), self.settings.fallback_job_queue
        )
        for result in results:
            if result.status is Status.WARN:
                self.logger.warning(result.line())
        if has_failures(results):
            failed = "\n".join(r.line() for r in results if r.status is Status.FAIL)
            raise WorkflowError(
                "AWS Batch is not ready for this run; nothing was submitted:\n"
                f"{failed}\nRun `awsbatch-mpi doctor --job-queue {self.settings.job_queue}` "
                "for all checks."
            )

    def _check_immediate_submit(self, jobs: list[Any]) -> None:
        """Refuse what --immediate-submit cannot run, before anything is submitted."""
        singles = [j for job in jobs for j in (job.jobs if job.is_group() else [job])]
        local = sorted({j.rule.name for j in singles if j.is_local and list(j.output)})
        if local:
            raise WorkflowError(
                "With --immediate-submit, Snakemake skips local rules, but the local "
                f"rule(s) {', '.join(local)} produce files other jobs need, so those jobs "
                "would fail in Batch. Run without --immediate-submit, or remove these rules "
                "from `localrules:` so they run on Batch too. Nothing was submitted."
            )
        checkpoints = sorted({j.rule.name for j in singles if getattr(j, "is_checkpoint", False)})
        if checkpoints:
            raise WorkflowError(
                f"Checkpoints ({', '.join(checkpoints)}) need Snakemake to re-evaluate the DAG "
                "after they finish, which --immediate-submit cannot do. Run without "
                "--immediate-submit. Nothing was submitted."
            )

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            self.logger.warning(message)

    # Submission --------------------------------------------------------------------------

    def _job_environment(self) -> Environment:
        """The variables passed to every job: fixed for the run, so split once."""
        if self._environment is None:
            settings = self.workflow.remote_execution_settings
            declared = [*(settings.envvars or ()), *(self.workflow.envvars or ())]
            self._environment = split_environment(self.envvars(), declared)
            warning = dropped_warning(self._environment)
            if warning:
                self._warn_once("env", warning)
        return self._environment

    def _plan(
        self,
        job: JobExecutorInterface,
        request: JobRequest,
        mpi_key_uri: str,
        before_submission: bool = False,
        queue_name: str | None = None,
        fallback_of: str | None = None,
    ) -> JobPlan:
        """The planner over one job, its refusals as messages that end the run cleanly.

        `queue_name` and `fallback_of`: plan the job's resubmission to its fallback queue.
        """
        after = " Nothing was submitted." if before_submission else " This job was not submitted."
        try:
            queue = self.batch.queue_info(queue_name or resolve_queue(request, self.translation))
            plan = plan_job(
                request,
                self.translation,
                queue,
                command=job_command(self, job, job_cores(request)),
                environment=self._job_environment(),
                workflow=self.workflow_name,
                run_id=self.run_id,
                # Where the nodes of a multi-node job read their rendezvous key (the key
                # itself never travels in a Batch request; see _store_mpi_key).
                mpi_key_uri=mpi_key_uri,
                depends_on_room=DEPENDS_ON_ROOM if self.immediate_submit else 0,
                fallback_of=fallback_of,
                validate=validate_request,
            )
        except (ResourceError, PlanError) as err:
            raise WorkflowError(f"{err}{after}") from None
        except BatchSetupError as err:
            raise WorkflowError(f"Rule '{request.rule}': {err}{after}") from None
        for warning in plan.warnings:
            self._warn_once(warning, warning)
        if runs_in_snakemake_image(plan.spec) and not job.is_local:  # local: no image
            self._image_rules.add(request.rule)
        if plan.disk_warning:
            self._warn_once(f"disk {request.rule}", plan.disk_warning)
        return plan

    def build_spec(self, job: JobExecutorInterface) -> JobSpec:
        return self._plan(job, job_request(job), self._mpi_key_uri()).spec

    def run_jobs(self, jobs: list[JobExecutorInterface]) -> None:
        """Submit jobs that became ready together; same-rule jobs may go as one array job."""
        pending = []
        for job in jobs:
            self.run_job_pre(job)
            if not self._resume(job):
                pending.append((job, self.build_spec(job)))
        arrays, singles = group_for_arrays(pending, self.settings.array_jobs)
        for members in arrays:
            self._submit_array(members)
        for job, spec in singles:
            self._submit(job, spec)

    def run_job(self, job: JobExecutorInterface) -> None:
        if not self._resume(job):
            self._submit(job, self.build_spec(job))

    def _resume(self, job: JobExecutorInterface) -> bool:
        """Pick up a job an earlier client submitted (same command, restarted) if still alive."""
        previous = self.dag.incomplete_external_jobid(job)
        if not previous:
            return False
        try:
            description = self.batch.describe([previous]).get(previous)
        except (ClientError, BotoCoreError):
            return False
        if description is None or description.get("status") == "FAILED":
            return False
        self.logger.info(
            f"Rule '{job.name}': picking up Batch job {previous} "
            f"({description.get('status')}) from an earlier run instead of submitting it again."
        )
        self.producers.record(self._paths(job.output), previous.split(":")[0])
        nodes = (description.get("nodeProperties") or {}).get("numNodes")
        self.report_job_submission(
            SubmittedJobInfo(job, external_jobid=previous, aux={"rule": job.name, "nodes": nodes})
        )
        return True

    @staticmethod
    def _paths(files: Any) -> list[str]:
        return [str(f) for f in files]

    def _definition_for(self, spec: JobSpec) -> str:
        if spec.job_definition:
            return self.batch.resolve_job_definition(spec.job_definition)
        return self.batch.ensure_job_definition(register_payload(spec.shape))

    def _depends_on(self, jobs: list[JobExecutorInterface], spec: JobSpec) -> list[str]:
        """Upstream Batch jobs of `jobs` under --immediate-submit (else Snakemake waits)."""
        if not self.immediate_submit:
            return []
        inputs = [path for job in jobs for path in self._paths(job.input)]
        upstream = self.producers.upstream(inputs)
        if len(upstream) <= MAX_DEPENDS_ON:
            return upstream
        definition = self.batch.ensure_job_definition(register_payload(barrier_shape(spec.shape)))

        def submit_barrier(ids: list[str], index: int) -> str:
            return self.batch.submit(barrier_payload(spec, definition, ids, index))

        return reduce_dependencies(upstream, submit_barrier)

    def _submit_guarded(self, spec: JobSpec, make_payload: Any) -> str:
        """Submit with errors turned into messages that name the rule and the next step."""
        try:
            return self.batch.submit(make_payload(self._definition_for(spec)))
        except BatchSetupError as err:
            raise WorkflowError(f"Rule '{spec.rule}': {err}") from None
        except (ClientError, BotoCoreError) as err:
            raise WorkflowError(
                f"Submitting rule '{spec.rule}' to queue '{spec.queue}' failed: {err}. "
                "Check the queue and your permissions with `awsbatch-mpi doctor`."
            ) from err

    def _submit(self, job: JobExecutorInterface, spec: JobSpec) -> None:
        depends_on = self._depends_on([job], spec)
        key = self._store_mpi_key(spec)
        try:
            job_id = self._submit_guarded(
                spec, lambda definition: submit_payload(spec, definition, depends_on)
            )
        except BaseException:
            self._forget_mpi_key(key)
            raise
        self.producers.record(self._paths(job.output), job_id)
        record_submission(self.run_id, job_id, spec.rule)
        self._submitted()
        self.logger.debug(f"Submitted {spec.name} as Batch job {job_id} to {spec.queue}.")
        self.report_job_submission(
            SubmittedJobInfo(
                job,
                external_jobid=job_id,
                aux={
                    "rule": spec.rule,
                    "nodes": spec.mpi.nodes if spec.mpi else None,
                    "mpi_key": key,
                },
            )
        )

    # MPI rendezvous keys -----------------------------------------------------------------

    def _mpi_key_uri(self) -> str:
        """Where a multi-node job's key goes: under the run's storage prefix ("" if none)."""
        prefix = self.workflow.storage_settings.default_storage_prefix or ""
        if not prefix.startswith("s3://"):
            return ""
        return key_uri(prefix, self.run_id, uuid.uuid4().hex)

    def _store_mpi_key(self, spec: JobSpec) -> str | None:
        """Write a fresh key for a multi-node job just before SubmitJob; its URI.

        The nodes read it with the job role; the request carries only the URI.
        """
        if spec.mpi is None:
            return None
        uri = dict(spec.environment)[ENV_KEY_URI]
        try:
            self.batch.put_object(uri, new_key().encode())
        except (ClientError, BotoCoreError) as err:
            raise WorkflowError(
                f"Could not store the rendezvous key of rule '{spec.rule}' at {uri}: {err}. "
                "Check that the default storage prefix is writable. Nothing was submitted "
                "for this job."
            ) from err
        return uri

    def _forget_mpi_key(self, uri: str | None) -> None:
        """Delete a job's key once the job has ended (the main node may have already)."""
        if not uri:
            return
        try:
            self.batch.delete_object(uri)
        except (ClientError, BotoCoreError) as err:
            self.logger.warning(
                f"Could not delete the MPI rendezvous key {uri} ({err}); the job has ended, "
                "so the key is of no use any more, but delete the object by hand."
            )

    def _submit_array(self, members: list[tuple[JobExecutorInterface, JobSpec]]) -> None:
        """One array job for same-shape jobs; child i runs job i's command from S3."""
        specs = [spec for _, spec in members]
        prefix = self.workflow.storage_settings.default_storage_prefix.rstrip("/")
        url = f"{prefix}/.awsbatch-mpi/arrays/{self.run_id}/{uuid.uuid4().hex}.json"
        try:
            self.batch.put_object(url, command_map(specs))
        except (ClientError, BotoCoreError) as err:
            raise WorkflowError(
                f"Could not store the command map of an array job of rule '{specs[0].rule}' "
                f"at {url}: {err}. Check that the default storage prefix is writable."
            ) from err
        parent = array_spec(specs[0], url, len(specs))
        depends_on = self._depends_on([job for job, _ in members], parent)
        parent_id = self._submit_guarded(
            parent,
            lambda definition: submit_payload(parent, definition, depends_on, len(specs)),
        )
        record_submission(self.run_id, parent_id, parent.rule)
        self._submitted()
        self.logger.info(
            f"Submitted {len(specs)} jobs of rule '{parent.rule}' as array job {parent_id}."
        )
        for index, (job, spec) in enumerate(members):
            self.producers.record(self._paths(job.output), parent_id)
            self.report_job_submission(
                SubmittedJobInfo(
                    job, external_jobid=f"{parent_id}:{index}", aux={"rule": spec.rule}
                )
            )

    # Status ------------------------------------------------------------------------------

    def _submitted(self) -> None:
        """Tell the status cadence: jobs were submitted, look at them soon."""
        self._last_submission = time.time()
        self.cadence.submitted(self._last_submission)

    def _plan_next_check(self, now: float, seen: list[Any]) -> None:
        self.cadence.checked(now, seen, self._last_submission)
        self.next_seconds_between_status_checks = self.cadence.sleep_seconds(time.time())

    async def check_active_jobs(
        self, active_jobs: list[SubmittedJobInfo]
    ) -> AsyncGenerator[SubmittedJobInfo, None]:
        now = time.time()
        # Snakemake starts its status thread before __post_init__: no cadence yet means no
        # job yet either, and the loop must not sleep Snakemake's default 10 s meanwhile.
        cadence: StatusCadence | None = getattr(self, "cadence", None)
        if cadence is None or not active_jobs:
            self.next_seconds_between_status_checks = cadence.fastest if cadence else 1.0
            for info in active_jobs:
                yield info
            return
        if not cadence.due(now):
            # A tick of Snakemake's loop between the checks the cadence planned: no AWS call.
            self.next_seconds_between_status_checks = cadence.sleep_seconds(now)
            for info in active_jobs:
                yield info
            return
        ids = [info.external_jobid for info in active_jobs]
        descriptions: dict[str, dict[str, Any]] = {}
        try:
            for chunk in clients.chunks(ids):
                async with self.status_rate_limiter:
                    descriptions.update(self.batch.describe(chunk))
            self._describe_failures = 0
        except (ClientError, BotoCoreError) as err:
            self._describe_failures += 1
            if self._describe_failures >= MAX_DESCRIBE_FAILURES:
                for info in active_jobs:
                    self.report_job_error(
                        info,
                        msg=f"Could not read the status of Batch job {info.external_jobid} "
                        f"{MAX_DESCRIBE_FAILURES} times in a row (last error: {err}). The job "
                        "may still be running: check it in the console.\n",
                    )
                return
            self.logger.warning(f"Reading job status from AWS Batch failed ({err}); retrying.")
            self._plan_next_check(now, [])
            for info in active_jobs:
                yield info
            return
        try:
            self._runnable.check(
                {
                    info.external_jobid: (info.aux.get("rule", "?"), description)
                    for info in active_jobs
                    if (description := descriptions.get(info.external_jobid)) is not None
                }
            )
        except Exception as err:  # noqa: BLE001 - a warning must never end the run
            self.logger.debug(f"The check for jobs stuck in RUNNABLE failed: {err}")

        seen = [
            observed(job_id, info.aux.get("rule", "?"), description)
            for info in active_jobs
            if (description := descriptions.get(job_id := info.external_jobid)) is not None
        ]
        self._plan_next_check(now, seen)
        for info in active_jobs:
            description = descriptions.get(info.external_jobid)
            if description is None:
                self._missing[info.external_jobid] += 1
                since = self._missing_since.setdefault(info.external_jobid, now)
                if (
                    self._missing[info.external_jobid] >= MAX_MISSING_CHECKS
                    and now - since >= MIN_MISSING_SECONDS
                ):
                    self.report_job_error(
                        info,
                        msg=f"AWS Batch no longer knows job {info.external_jobid} (not found "
                        f"in {MAX_MISSING_CHECKS} status checks); it may have expired or been "
                        "deleted. Run the workflow again to resubmit it.\n",
                    )
                    del self._missing[info.external_jobid]
                    self._missing_since.pop(info.external_jobid, None)
                    self._attempts_seen.pop(info.external_jobid, None)
                else:
                    yield info
                continue
            self._missing.pop(info.external_jobid, None)
            self._missing_since.pop(info.external_jobid, None)
            self._report_attempts(info, description)
            state = outcome(description)
            if state is Outcome.RUNNING:
                yield info
                continue
            # The job has ended: its per-job state is no longer needed.
            self._attempts_seen.pop(info.external_jobid, None)
            self._ended[info.external_jobid] = description
            self._forget_mpi_key(info.aux.get("mpi_key"))
            if state is Outcome.SUCCEEDED:
                self.report_job_success(info)
            elif (moved := self._resubmit_on_demand(info, description)) is not None:
                yield moved
            else:
                self._report_failure(info, description)

    def _resubmit_on_demand(
        self, info: SubmittedJobInfo, description: dict[str, Any]
    ) -> SubmittedJobInfo | None:
        """Submit a job whose Spot host was reclaimed on its last attempt once more, to its
        on-demand fallback queue; None when it has none (or is itself such a resubmission)."""
        if info.aux.get("fallback_of") or self.immediate_submit or not lost_to_spot(description):
            return None
        request = job_request(info.job)
        old, rule = info.external_jobid, info.aux.get("rule", request.rule)
        try:
            queue = fallback_queue_of(request, self.translation)
            if not queue:
                return None
            spec = self._plan(info.job, request, "", queue_name=queue, fallback_of=old).spec
            new = self._submit_guarded(spec, lambda definition: submit_payload(spec, definition))
        except (WorkflowError, ResourceError) as err:
            self.logger.warning(
                f"Rule '{rule}': Batch job {old} lost its Spot instance, and submitting it to "
                f"its fallback queue failed ({err}); it is reported as failed."
            )
            return None
        record_submission(self.run_id, new, spec.rule)
        self._submitted()
        self.producers.record(self._paths(info.job.output), new)
        info.job.register(external_jobid=new)  # a restarted client picks up the new job
        self.logger.info(
            f"Rule '{rule}': Batch job {old} lost its Spot instance on its last attempt "
            f"({failure(description).attempt_reason}); submitted it once more to the on-demand "
            f"queue '{queue}' as Batch job {new}."
        )
        aux = {"rule": rule, "fallback_of": old}
        return SubmittedJobInfo(info.job, external_jobid=new, aux=aux)

    def _report_attempts(self, info: SubmittedJobInfo, description: dict[str, Any]) -> None:
        """Tell the user about attempts Batch retried on its own (e.g. Spot reclaims)."""
        done = finished_attempts(description)
        seen = self._attempts_seen.get(info.external_jobid, 0)
        for number, attempt in enumerate(done[seen:], start=seen + 1):
            self.logger.warning(
                f"Rule '{info.aux.get('rule', '?')}': attempt {number} of Batch job "
                f"{info.external_jobid} ended ({attempt_reason(attempt)}); Batch retries it by "
                f"itself (up to {self.settings.batch_attempts} attempts), without using "
                "Snakemake's --retries."
            )
        self._attempts_seen[info.external_jobid] = len(done)

    def _report_failure(self, info: SubmittedJobInfo, description: dict[str, Any]) -> None:
        """Report a failed job with Batch's reasons, the end of the rule's own `log:` files
        (read back from storage: they usually hold the cause) and the tail of its log(s).

        A multi-node job has one log stream per node; every node's tail is kept, and the
        message names the nodes that failed.
        """
        rule = info.aux.get("rule", "?")
        fail = failure(description)
        streams: list[tuple[str, str]] = []  # (label, stream)
        failed_nodes = []
        nodes = info.aux.get("nodes") or (description.get("nodeProperties") or {}).get("numNodes")
        if nodes:
            node_ids = [f"{fail.job_id}#{i}" for i in range(int(nodes))]
            try:
                node_descs = self.batch.describe(node_ids)
            except (ClientError, BotoCoreError):
                node_descs = {}
            for index, node_id in enumerate(node_ids):
                node = failure(node_descs.get(node_id, {}))
                if node.exit_code not in (None, 0):
                    failed_nodes.append(f"node {index} (exit code {node.exit_code})")
                if node.log_stream:
                    streams.append((f"node{index}", node.log_stream))
        if not streams and fail.log_stream:
            streams.append(("", fail.log_stream))
        log_group = self.settings.log_group
        tails = fetch_tails(
            self.batch, log_group, streams, self.settings.log_tail_lines, rule, fail.job_id
        )
        rule_logs = fetch_rule_logs(
            self.batch,
            internals.storage_urls(info.job.log),
            rule,
            fail.job_id,
            self.settings.log_tail_lines,
        )
        message = failure_message(
            rule,
            fail,
            self.batch.region,
            log_group,
            tails,
            failed_nodes,
            rule_log_lines(rule_logs),
        )
        aux_logs = [tail.saved for tail in tails if tail.saved]
        self.report_job_error(info, msg=message + "\n", aux_logs=aux_logs)

    # End of run --------------------------------------------------------------------------

    def shutdown(self) -> None:
        super().shutdown()
        self._write_report()
        # Snakemake calls this when scheduling is over: its last re-evaluation timer would
        # only keep the finished run alive for up to another second.
        internals.cancel_reevaluation_timers()

    def _write_report(self) -> None:
        """The run report next to the logs; a report problem never fails the run."""
        if not getattr(self, "run_id", None):
            return  # the executor stopped before its start-up checks were done
        try:
            from .report import end_of_run_report

            line = end_of_run_report(self.batch.client, self.run_id, known=self._ended)
        except Exception as err:  # noqa: BLE001 - the run's outcome must not depend on it
            self.logger.warning(
                f"The report of run {self.run_id} could not be written ({err}); make it later "
                f"with `awsbatch-mpi report --run {self.run_id} --html report.html`."
            )
            return
        if line:
            self.logger.info(line)

    # Cancel ------------------------------------------------------------------------------

    def cancel_jobs(self, active_jobs: list[SubmittedJobInfo]) -> None:
        if not active_jobs:
            return
        stopped, failed = self.batch.terminate(
            [info.external_jobid for info in active_jobs],
            reason=f"Cancelled by Snakemake (run {self.run_id})",
        )
        self.logger.info(f"Terminated {stopped} AWS Batch job(s) of run {self.run_id}.")
        for info in active_jobs:
            self._forget_mpi_key(info.aux.get("mpi_key"))
        if failed:
            self.logger.error(
                "These jobs could not be terminated; stop them in the console or with "
                "`aws batch terminate-job`: " + "; ".join(failed)
            )
