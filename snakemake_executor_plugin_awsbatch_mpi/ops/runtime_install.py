"""`awsbatch-mpi runtime install`: put this plugin version's runtime on its file system, once.

Why a Batch job: an EFS file system is reachable only from inside its VPC, where the queues
run. One small job in the runtime image (containers/Dockerfile.runtime) mounts the file system
read-write and copies the runtime's directory onto it as `<version>/` (into a temporary name
first, then renamed: a job that reads it never sees half a runtime). Every later job mounts it
read-only. Another plugin version is another directory: an upgrade never changes the runtime
under a running job, and old versions stay until removed by hand.

After the job succeeded, the file system is tagged `awsbatch-mpi-runtime-<version>` (value:
when, and by which job), so `awsbatch-mpi doctor` can tell which runtimes a file system holds
without mounting it.

The job's requests come from the one planner (`core.planner.plan_job`), like every request of
the plugin.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..batch.model import validate_request
from ..core.anyimage import RUNTIME_ROOT, RUNTIME_SHELL, RUNTIME_VERSION
from ..core.planner import JobPlan, plan_job, split_environment
from ..core.request import JobRequest, TranslationSettings
from ..core.spec import QueueInfo, Volume, VolumeKind

# Where the install job mounts the runtime's file system (read-write).
INSTALL_MOUNT = "/mnt/awsbatch-mpi-runtime"
RUNTIME_TAG = f"awsbatch-mpi-runtime-{RUNTIME_VERSION}"
INSTALL_RULE = "awsbatch-mpi-runtime-install"
# The job copies ~200 MB: 1 vCPU and 2 GB are plenty (Fargate rounds them to a valid pair).
INSTALL_MEMORY_MB = 2048


class InstallError(RuntimeError):
    """The runtime could not be installed; the message says why and what to do."""


def install_command(version: str = RUNTIME_VERSION, source: str = RUNTIME_ROOT) -> str:
    """The install job's shell script (for `/bin/sh -c`; the runtime image's own tools).

    Idempotent: a runtime whose `runtime.json` equals the image's is left alone. The copy is
    checked (same number of files) before it takes the version's name.
    """
    target = f"{INSTALL_MOUNT}/{version}"
    return (
        "set -eu; "
        f"src={source}; dst={target}; tmp={INSTALL_MOUNT}/.{version}.$$; "
        'if [ -f "$dst/runtime.json" ] && cmp -s "$src/runtime.json" "$dst/runtime.json"; then '
        f'echo "awsbatch-mpi runtime {version} is already installed at $dst."; exit 0; fi; '
        'rm -rf "$tmp"; cp -a "$src" "$tmp"; '
        'want=$(find "$src" | wc -l); got=$(find "$tmp" | wc -l); '
        'if [ "$want" != "$got" ]; then echo "copied $got of $want files" >&2; exit 1; fi; '
        'if [ -e "$dst" ]; then mv "$dst" "$dst.old.$$"; fi; mv "$tmp" "$dst"; '
        'rm -rf "$dst.old.$$"; '
        f'echo "awsbatch-mpi runtime {version} installed at $dst ($got files)."'
    )


def install_plan(
    file_system: Volume,
    queue: QueueInfo,
    image: str,
    job_role_arn: str | None = None,
    execution_role_arn: str | None = None,
    log_group: str | None = None,
) -> JobPlan:
    """The RegisterJobDefinition and SubmitJob requests of the install job."""
    volume = Volume(
        file_system.kind, file_system.source, INSTALL_MOUNT, file_system.access_point, False
    )
    settings = TranslationSettings(
        job_queue=queue.name,
        default_image=image,
        job_role_arn=job_role_arn,
        execution_role_arn=execution_role_arn,
        log_group=log_group,
        volumes=(volume,),
        batch_attempts=1,
    )
    request = JobRequest(INSTALL_RULE, 1, {"mem_mb": INSTALL_MEMORY_MB, "runtime": 30})
    return plan_job(
        request,
        settings,
        queue,
        command=(*RUNTIME_SHELL, install_command()),
        environment=split_environment({}, ()),
        workflow="awsbatch-mpi-runtime",
        run_id=f"runtime-{RUNTIME_VERSION.replace('.', '-')}",
        validate=validate_request,
    )


def installed_tag_value(job_id: str, now: datetime | None = None) -> str:
    stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{stamp} job {job_id}"


@dataclass(frozen=True)
class InstallResult:
    job_id: str
    status: str
    reason: str
    log: tuple[str, ...] = ()


def _log_tail(batch: Any, job: dict[str, Any], log_group: str | None) -> tuple[str, ...]:
    """The job's last log lines; none when the log cannot be read (it only helps explain)."""
    stream = (job.get("container") or {}).get("logStreamName")
    if not stream:
        return ()
    try:
        return tuple(batch.log_tail(log_group or "/aws/batch/job", stream, 20))
    except Exception:  # noqa: BLE001 - a missing log group or permission: no log to show
        return ()


def install(
    batch: Any,
    shell: Any,
    file_system: Volume,
    queue_name: str,
    image: str,
    job_role_arn: str | None = None,
    execution_role_arn: str | None = None,
    log_group: str | None = None,
    timeout_seconds: float = 1800,
    on_line: Callable[[str], None] = lambda line: None,
    poll_seconds: float = 2.0,
) -> InstallResult:
    """Run the install job on `queue_name` and tag the file system when it succeeded.

    `batch` is a `batch.client.BatchClient`, `shell` an `ops.aws_shell.AwsShell` (EFS).
    """
    if file_system.kind is VolumeKind.EFS:
        shell.file_system(file_system.source)  # exists, or AwsError naming it
    plan = install_plan(
        file_system,
        batch.queue_info(queue_name),
        image,
        job_role_arn,
        execution_role_arn,
        log_group,
    )
    assert plan.register is not None
    definition = batch.ensure_job_definition(plan.register)
    job_id = batch.submit(plan.submit(definition))
    on_line(f"Submitted the install job {job_id} to queue '{queue_name}' (image {image}).")
    deadline = time.monotonic() + timeout_seconds
    status, job = "SUBMITTED", {}
    while time.monotonic() < deadline:
        job = batch.describe([job_id]).get(job_id, {})
        if job.get("status") != status:
            status = str(job.get("status", status))
            on_line(f"  {status}")
        if status in ("SUCCEEDED", "FAILED"):
            break
        time.sleep(poll_seconds)
    log = _log_tail(batch, job, log_group)
    reason = str(job.get("statusReason") or (job.get("container") or {}).get("reason") or "")
    if status != "SUCCEEDED":
        what = (
            "failed" + (f" ({reason})" if reason else "")
            if status == "FAILED"
            else f"is still {status} after {timeout_seconds:.0f} s"
        )
        raise InstallError(
            f"The runtime install job {job_id} {what}. Its last log lines:\n  "
            + "\n  ".join(log or ("(no log)",))
            + f"\nCheck that queue '{queue_name}' can run the image {image} (push "
            "containers/Dockerfile.runtime to ECR) and reach the file system (mount targets "
            "in the queue's subnets, NFS port 2049 open), then run the install again."
        )
    if file_system.kind is VolumeKind.EFS:
        shell.tag_file_system(file_system.source, RUNTIME_TAG, installed_tag_value(job_id))
    return InstallResult(job_id, status, reason, log)
