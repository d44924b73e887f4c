"""Read a DescribeJobs answer: is the job done, and if it failed, why (pure)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

DONE_OK = "SUCCEEDED"
DONE_FAILED = "FAILED"


class Outcome(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True)
class Failure:
    """Why a Batch job failed, in the words Batch used."""

    job_id: str
    status_reason: str | None
    container_reason: str | None
    exit_code: int | None
    log_stream: str | None
    memory_mib: str | None = None

    def summary(self) -> str:
        parts = []
        if self.exit_code is not None:
            parts.append(f"exit code {self.exit_code}")
        if self.status_reason:
            parts.append(f"status reason: {self.status_reason}")
        if self.container_reason:
            parts.append(f"container reason: {self.container_reason}")
        return "; ".join(parts) or "Batch gave no reason"


def outcome(description: dict[str, Any]) -> Outcome:
    status = description.get("status")
    if status == DONE_OK:
        return Outcome.SUCCEEDED
    if status == DONE_FAILED:
        return Outcome.FAILED
    return Outcome.RUNNING


def failure(description: dict[str, Any]) -> Failure:
    """Collect exit code and reasons from the job and its last attempt.

    The exit code may be missing from the job's own `container` (moto omits it, and Batch leaves
    it out when the container never started), so the last attempt is consulted too.
    """
    container = description.get("container") or {}
    attempts = description.get("attempts") or []
    last = (attempts[-1].get("container") or {}) if attempts else {}
    exit_code = container.get("exitCode", last.get("exitCode"))
    return Failure(
        job_id=description.get("jobId", "?"),
        status_reason=description.get("statusReason")
        or (attempts[-1].get("statusReason") if attempts else None),
        container_reason=container.get("reason") or last.get("reason"),
        exit_code=exit_code,
        log_stream=container.get("logStreamName") or last.get("logStreamName"),
        memory_mib=next(
            (
                r.get("value")
                for r in container.get("resourceRequirements") or []
                if r.get("type") == "MEMORY"
            ),
            None,
        ),
    )


_COMMAND_EXIT = re.compile(r"returned non-zero exit status (\d+)")


def command_exit_code(log_lines: list[str]) -> int | None:
    """The exit code of the rule's own command, as Snakemake logged it inside the job.

    Batch only sees the exit code of the Snakemake process (1 for any failure).
    """
    for line in reversed(log_lines):
        match = _COMMAND_EXIT.search(line)
        if match:
            return int(match.group(1))
    return None


# The node agent's last line on the main node when mpirun failed (mpi/agent.py).
_MPI_FAILURE = re.compile(r"after mpirun failed with -?\d+ \((.+)\): exiting with")


def mpi_failure_reason(log_lines: list[str]) -> str | None:
    """Why mpirun failed, as the node agent summed up its report (e.g. which rank aborted)."""
    for line in reversed(log_lines):
        match = _MPI_FAILURE.search(line)
        if match:
            return match.group(1)
    return None


def finished_attempts(description: dict[str, Any]) -> list[dict[str, Any]]:
    """Attempts that ended, except the final failure of a failed job (reported on its own)."""
    done = [a for a in description.get("attempts") or [] if a.get("stoppedAt")]
    if description.get("status") == DONE_FAILED:
        done = done[:-1]
    return done


def attempt_reason(attempt: dict[str, Any]) -> str:
    container = attempt.get("container") or {}
    return attempt.get("statusReason") or container.get("reason") or "no reason given"


def console_url(region: str, job_id: str) -> str:
    return (
        f"https://{region}.console.aws.amazon.com/batch/home?region={region}#jobs/detail/{job_id}"
    )


def logs_url(region: str, group: str, stream: str) -> str:
    def enc(text: str) -> str:
        return text.replace("/", "$252F").replace("#", "$2523")

    return (
        f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}"
        f"#logsV2:log-groups/log-group/{enc(group)}/log-events/{enc(stream)}"
    )


def failure_message(rule: str, fail: Failure, region: str, log_group: str) -> str:
    """A complete, user-facing explanation of a failed job, with where to look next."""
    lines = [
        f"AWS Batch job {fail.job_id} for rule '{rule}' failed: {fail.summary()}.",
    ]
    reason = f"{fail.status_reason or ''} {fail.container_reason or ''}"
    if "OutOfMemory" in reason or fail.exit_code == 137:
        asked = f" of the {fail.memory_mib} MiB it requested" if fail.memory_mib else ""
        lines.append(
            f"The container was killed for running out{asked} memory: raise mem_mb for this "
            "rule, or let it grow with each attempt, e.g. "
            "resources: mem_mb=lambda wildcards, attempt: 4000 * attempt, with --retries 2."
        )
    if fail.log_stream:
        lines.append(f"Log stream: {log_group}/{fail.log_stream}")
        lines.append(f"Logs: {logs_url(region, log_group, fail.log_stream)}")
    lines.append(f"Console: {console_url(region, fail.job_id)}")
    return "\n".join(lines)
