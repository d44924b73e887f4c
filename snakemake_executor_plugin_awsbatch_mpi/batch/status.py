"""Read a DescribeJobs answer: is the job done, and if it failed, why (pure)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Any

from ..core.disk_guard import DISK_GUARD_MARK
from ..mpi import NO_LAUNCHER

DONE_OK = "SUCCEEDED"
DONE_FAILED = "FAILED"
# Job states in which Batch has queued the job (again) and no attempt is running.
_QUEUED = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING")

# Batch's own words for the ways it ends a job (statusReason / container reason).
TIMEOUT_REASON = "Job attempt duration exceeded timeout"
OUT_OF_MEMORY_REASON = "OutOfMemoryError"
SPOT_RECLAIM_PREFIX = "Host EC2"
SIGKILL_EXIT_CODE = 137
# Log lines shown in a failure message (the saved log file has every fetched line).
SHOWN_LOG_LINES = 25


class Outcome(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class Cause(StrEnum):
    """Why Batch (not the rule) ended a job; each has its own remedy."""

    TIMEOUT = "timeout"
    OUT_OF_MEMORY = "out of memory"
    SPOT_RECLAIM = "spot reclaim"
    KILLED = "killed"


@dataclass(frozen=True)
class Failure:
    """Why a Batch job failed, in the words Batch used."""

    job_id: str
    status_reason: str | None
    container_reason: str | None
    exit_code: int | None
    log_stream: str | None
    memory_mib: str | None = None
    attempt_reason: str | None = None
    timeout_seconds: int | None = None
    image: str | None = None

    def summary(self) -> str:
        parts = []
        if self.exit_code is not None:
            parts.append(f"exit code {self.exit_code}")
        if self.status_reason:
            parts.append(f"status reason: {self.status_reason}")
        if self.attempt_reason and self.attempt_reason != self.status_reason:
            parts.append(f"last attempt: {self.attempt_reason}")
        if self.container_reason:
            parts.append(f"container reason: {self.container_reason}")
        return "; ".join(parts) or "Batch gave no reason"

    @property
    def cause(self) -> Cause | None:
        """Timeout, out of memory, Spot reclaim or a bare SIGKILL; None for the rule's own
        failure. All of them may show exit code 137, so the reasons decide first."""
        reasons = [r for r in (self.status_reason, self.attempt_reason) if r]
        if any(TIMEOUT_REASON in r for r in reasons):
            return Cause.TIMEOUT
        if any(OUT_OF_MEMORY_REASON in r for r in [*reasons, self.container_reason or ""]):
            return Cause.OUT_OF_MEMORY
        if any(r.startswith(SPOT_RECLAIM_PREFIX) for r in reasons):
            return Cause.SPOT_RECLAIM
        if self.exit_code == SIGKILL_EXIT_CODE:
            return Cause.KILLED
        return None


def lost_to_spot(description: dict[str, Any]) -> bool:
    """The job's last attempt ended because its Spot host was reclaimed: its statusReason
    starts with "Host EC2" and it has no exit code (the container never got to exit)."""
    fail = failure(description)
    reason = fail.attempt_reason or fail.status_reason or ""
    return reason.startswith(SPOT_RECLAIM_PREFIX) and fail.exit_code is None


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
    last_attempt = attempts[-1] if attempts else {}
    last = last_attempt.get("container") or {}
    exit_code = container.get("exitCode", last.get("exitCode"))
    return Failure(
        job_id=description.get("jobId", "?"),
        status_reason=description.get("statusReason") or last_attempt.get("statusReason"),
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
        attempt_reason=last_attempt.get("statusReason"),
        timeout_seconds=(description.get("timeout") or {}).get("attemptDurationSeconds"),
        image=container.get("image") or _node_image(description),
    )


def _node_image(description: dict[str, Any]) -> str | None:
    """A multi-node job's image (its first node range's; one range per job here)."""
    for group in (description.get("nodeProperties") or {}).get("nodeRangeProperties") or []:
        image = (group.get("container") or {}).get("image")
        if image:
            return str(image)
    return None


_MISSING_LAUNCHER = re.compile(re.escape(NO_LAUNCHER) + r" \((\S+)\)")


def missing_launcher(log_lines: Sequence[str]) -> str | None:
    """The launcher (``mpirun``/``mpiexec``) the job's image lacks, as the agent reported."""
    found = mpi_failure(log_lines)
    match = _MISSING_LAUNCHER.search(found[1]) if found else None
    return match.group(1) if match else None


_COMMAND_EXIT = re.compile(r"returned non-zero exit status (\d+)")


def command_exit_code(log_lines: Sequence[str]) -> int | None:
    """The exit code of the rule's own command, as Snakemake logged it inside the job.

    Batch only sees the exit code of the Snakemake process (1 for any failure).
    """
    for line in reversed(log_lines):
        match = _COMMAND_EXIT.search(line)
        if match:
            return int(match.group(1))
    return None


# The node agent's last line on the main node when mpirun failed (mpi/agent.py); the agent's
# log prefix names the node it runs on (mpi/nodelog.py).
_MPI_FAILURE = re.compile(
    r"\[awsbatch-mpi node (\S+?)\].*after mpirun failed with -?\d+ \((.+)\): exiting with"
)


def mpi_failure(log_lines: Sequence[str]) -> tuple[str, str] | None:
    """(node index, why mpirun failed) as the node agent summed up its report."""
    for line in reversed(log_lines):
        match = _MPI_FAILURE.search(line)
        if match:
            return match.group(1), match.group(2)
    return None


def mpi_failure_reason(log_lines: Sequence[str]) -> str | None:
    """Why mpirun failed, as the node agent summed up its report (e.g. which rank aborted)."""
    found = mpi_failure(log_lines)
    return found[1] if found else None


# The node agent's line when a node stopped answering or its connection closed
# (mpi/agent.py, LostNode.describe): "[awsbatch-mpi node 0] ... node 2 at 10.0.1.7 was lost
# (last heard from at 23:59:01 UTC, 30.2 s earlier)"; a child says "main node 0 at ...".
_NODE_LOST = re.compile(
    r"\[awsbatch-mpi node (\S+?)\].*?\b(main node|node) (\d+) at (\S+) was lost \(([^)]*)\)"
)


@dataclass(frozen=True)
class LostNode:
    """A node that the other nodes lost while the job ran, as one of them reported it."""

    reported_by: str  # the reporting node's index
    node_index: int
    address: str
    detail: str  # "last heard from at 23:59:01 UTC, 30.2 s earlier" / "its ... closed at ..."
    is_main: bool

    def describe(self) -> str:
        who = "main node" if self.is_main else "node"
        return f"{who} {self.node_index} at {self.address} ({self.detail})"


def lost_nodes(log_lines: Sequence[str]) -> list[LostNode]:
    """Every node loss the node agents reported in these lines, first report of each node."""
    found: dict[int, LostNode] = {}
    for line in log_lines:
        match = _NODE_LOST.search(line)
        if match and int(match.group(3)) not in found:
            found[int(match.group(3))] = LostNode(
                reported_by=match.group(1),
                node_index=int(match.group(3)),
                address=match.group(4),
                detail=match.group(5),
                is_main=match.group(2) == "main node",
            )
    return list(found.values())


def first_lost_node(tails: Sequence[LogTail]) -> LostNode | None:
    """The loss to lead with: the main node's report of a child, else a child's of the main.

    When the main node itself is cut off, it reports every child lost and the children
    report it: the children's view (one node, the main) is then the useful one.
    """
    reports = [lost for tail in tails for lost in lost_nodes(tail.lines)]
    children = [lost for lost in reports if not lost.is_main]
    mains = [lost for lost in reports if lost.is_main]
    if mains and len({lost.node_index for lost in children}) > 1:
        return mains[0]
    return (children or mains or [None])[0]
def disk_check_failure(log_lines: Sequence[str]) -> str | None:
    """The in-job disk check's message (core/disk_guard.py), when it stopped the job."""
    for line in reversed(log_lines):
        if line.startswith(DISK_GUARD_MARK):
            return line.removeprefix(DISK_GUARD_MARK).strip()
    return None


# botocore's words for a connection that never got through (EndpointConnectionError and
# ConnectTimeoutError): on a multi-node node, the sign of a subnet without a way to S3.
_NO_CONNECTION = re.compile(
    r"Could not connect to the endpoint URL|Connect timeout on endpoint URL"
)


def unreachable_aws(log_lines: Sequence[str]) -> bool:
    """Whether a node's log says an AWS call (S3: the key, the inputs) could not connect."""
    return any(_NO_CONNECTION.search(line) for line in log_lines)


def finished_attempts(description: dict[str, Any]) -> list[dict[str, Any]]:
    """Attempts that ended and that Batch followed with another one (its own retries).

    The last attempt is left out unless Batch has queued the job again: of a finished job it
    is the final outcome (success, or the failure reported on its own), and of a running job
    it may be the one that is just ending. Real Batch lists a succeeded first attempt too, so
    counting every stopped attempt warned about retries that never happened.
    """
    attempts = description.get("attempts") or []
    if description.get("status") not in _QUEUED:
        attempts = attempts[:-1]
    return [a for a in attempts if a.get("stoppedAt")]


def attempt_reason(attempt: dict[str, Any]) -> str:
    container = attempt.get("container") or {}
    return attempt.get("statusReason") or container.get("reason") or "no reason given"


# The AWS console's domain per partition; partitions without a public console get no links.
CONSOLE_DOMAINS = {
    "aws": "console.aws.amazon.com",
    "aws-cn": "console.amazonaws.cn",
    "aws-us-gov": "console.amazonaws-us-gov.com",
}


@lru_cache(maxsize=32)
def partition(region: str) -> str:
    """The AWS partition of a region (aws, aws-cn, aws-us-gov, ...), as botocore knows it."""
    import botocore.session
    from botocore.exceptions import UnknownRegionError

    try:
        return botocore.session.get_session().get_partition_for_region(region)
    except UnknownRegionError:
        return "aws"


def _console(region: str) -> str | None:
    domain = CONSOLE_DOMAINS.get(partition(region))
    return f"https://{region}.{domain}" if domain else None


def console_url(region: str, job_id: str) -> str | None:
    base = _console(region)
    return f"{base}/batch/home?region={region}#jobs/detail/{job_id}" if base else None


def logs_url(region: str, group: str, stream: str) -> str | None:
    def enc(text: str) -> str:
        return text.replace("/", "$252F").replace("#", "$2523")

    base = _console(region)
    if base is None:
        return None
    return (
        f"{base}/cloudwatch/home?region={region}"
        f"#logsV2:log-groups/log-group/{enc(group)}/log-events/{enc(stream)}"
    )


@dataclass(frozen=True)
class LogTail:
    """The last lines of one log stream of a failed job, and where they were saved."""

    label: str  # "" for a single-node job, "node<i>" for a node of a multi-node job
    stream: str
    lines: tuple[str, ...] = ()
    saved: str | None = None
    error: str | None = None


def _what_happened(
    rule: str,
    fail: Failure,
    command_code: int | None,
    lost: LostNode | None = None,
    launcher: str | None = None,
) -> str:
    """The headline: a lost node, else the rule's own exit code when the log has it, else
    what Batch did. A lost node leads because the command's exit code is then only that of
    the stopped command."""
    job = f"AWS Batch job {fail.job_id} of rule '{rule}'"
    if launcher is not None:
        image = f"image {fail.image}" if fail.image else "job's image"
        return (
            f"The MPI rule '{rule}' cannot run in its {image}: the image lacks `{launcher}` "
            f"(no MPI launcher on PATH; AWS Batch job {fail.job_id})."
        )
    if lost is not None:
        return (
            f"{job} lost {lost.describe()}: the other nodes stopped mpirun and ended the job "
            "instead of waiting for its timeout."
        )
    if command_code is not None:
        return (
            f"The command of rule '{rule}' exited with code {command_code} "
            f"(AWS Batch job {fail.job_id})."
        )
    cause = fail.cause
    if cause is Cause.TIMEOUT:
        limit = f" of {fail.timeout_seconds} s" if fail.timeout_seconds else ""
        return f"{job} was stopped by Batch: it ran longer than its timeout{limit}."
    if cause is Cause.OUT_OF_MEMORY:
        asked = f" the {fail.memory_mib} MiB it requested" if fail.memory_mib else " its memory"
        return f"{job} was killed for running out of{asked}."
    if cause is Cause.SPOT_RECLAIM:
        reason = fail.attempt_reason or fail.status_reason
        return f"{job} lost its instance on its last attempt (a Spot reclaim: {reason})."
    if cause is Cause.KILLED:
        return f"{job} was killed with SIGKILL (exit code 137); Batch did not say why."
    if fail.exit_code is not None:
        return f"{job} failed with exit code {fail.exit_code}."
    return f"{job} failed without an exit code (the container may never have started)."


# A rule's own image (issue 22) without the shell the job command starts with.
NO_SHELL_ADVICE = (
    "Next: the job's image has no /bin/sh, which the plugin needs to start Snakemake (from "
    "its runtime, for an image without Snakemake). Use an image with a POSIX shell (a static "
    "busybox is enough), or build one FROM the tool's image that adds it."
)


def lacks_shell(fail: Failure) -> bool:
    """The container could not start because its image has no /bin/sh (or /bin/bash)."""
    reasons = " ".join(
        r for r in (fail.status_reason, fail.attempt_reason, fail.container_reason) if r
    )
    return any(f'"{shell}"' in reasons or f"stat {shell}" in reasons
               for shell in ("/bin/sh", "/bin/bash")) and "no such file" in reasons.lower()


def _advice(
    fail: Failure, lost: LostNode | None = None, launcher: str | None = None
) -> str | None:
    if launcher is not None:
        return (
            "Next: build the rule's image on the plugin's MPI image (containers/Dockerfile.mpi, "
            "Open MPI 4.1) or install an MPI in it, push it, and name it with resources: "
            "awsbatch_image=... (see docs/mpi.md)."
        )
    if lost is not None:
        return (
            "Next: a lost node is a failure of its instance or of the network between the "
            "nodes, not of the rule nor of its runtime: run the workflow again (or use "
            "Snakemake's --retries). If it happens again, look for the node's instance in the "
            "compute environment and check that the nodes' security group allows TCP between "
            "them (port 47801 and MPI's own ports)."
        )
    if lacks_shell(fail):
        return NO_SHELL_ADVICE
    cause = fail.cause
    if cause is Cause.TIMEOUT:
        return (
            "Next: raise runtime (in minutes) for this rule, e.g. resources: runtime=120; "
            "Batch's timeout comes from it."
        )
    if cause is Cause.OUT_OF_MEMORY:
        return (
            "Next: raise mem_mb for this rule, or let it grow with each attempt, e.g. resources: "
            "mem_mb=lambda wildcards, attempt: 4000 * attempt, with --retries 2."
        )
    if cause is Cause.SPOT_RECLAIM:
        return (
            "Next: run the workflow again, allow Batch more attempts of its own "
            "(--awsbatch-mpi-batch-attempts), let such jobs run once more on an on-demand "
            "queue (--awsbatch-mpi-fallback-job-queue; `awsbatch-mpi setup` creates one), or "
            "send this rule to an on-demand queue (resources: awsbatch_queue=...)."
        )
    if cause is Cause.KILLED:
        return (
            "It was neither Batch's timeout nor its out-of-memory kill: something in the job "
            "or on its host sent SIGKILL; the log may tell what."
        )
    return None


def failure_message(
    rule: str,
    fail: Failure,
    region: str,
    log_group: str,
    tails: Sequence[LogTail] = (),
    failed_nodes: Sequence[str] = (),
    rule_logs: Sequence[str] = (),
) -> str:
    """A complete, user-facing explanation of a failed job, with where to look next.

    It leads with the rule's own exit code (Batch only knows Snakemake's, 1 for any failure)
    and the saved log; then the rule's own `log:` files as read from storage (`rule_logs`,
    already rendered: they usually hold the cause); Batch's codes and reasons follow.
    """
    command_code = next(
        (code for tail in tails if (code := command_exit_code(tail.lines)) is not None), None
    )
    saved = [tail.saved for tail in tails if tail.saved]
    lost = first_lost_node(tails)
    launcher = next((name for tail in tails if (name := missing_launcher(tail.lines))), None)
    headline = _what_happened(rule, fail, command_code, lost, launcher)
    disk = next((found for tail in tails if (found := disk_check_failure(tail.lines))), None)
    if disk:
        headline = f"AWS Batch job {fail.job_id} of rule '{rule}' stopped at its start: {disk}"
    if saved:
        headline += f" The log is saved in {', '.join(saved)} (last lines below)."
    elif fail.log_stream:
        headline += f" Read its log with `awsbatch-mpi logs {fail.job_id}`."
    lines = [headline, *rule_logs]
    advice = _advice(fail, lost, launcher)
    if advice:
        lines.append(advice)
    for tail in tails:
        for other in lost_nodes(tail.lines):
            if lost is not None and other != lost:
                of = tail.label or f"node{other.reported_by}"
                lines.append(f"{of} also reported: {other.describe()} was lost.")
    for tail in tails:
        found = mpi_failure(tail.lines)
        if found:
            node = tail.label or (f"node{found[0]}" if found[0].isdigit() else "the main node")
            lines.append(f"mpirun on {node} reported: {found[1]}.")
    cut_off = [t.label for t in tails if t.label and unreachable_aws(t.lines)]
    if cut_off:
        lines.append(
            f"{', '.join(cut_off)} could not connect to S3: the containers of multi-node jobs "
            "get no public IP (awsvpc mode), so the compute environment's subnets need an S3 "
            "gateway endpoint on their route table or a NAT gateway. `awsbatch-mpi doctor "
            "--multinode-job-queue QUEUE` checks them; `awsbatch-mpi setup` builds them so."
        )
    if failed_nodes:
        lines.append("Failed nodes: " + ", ".join(failed_nodes) + ".")
    whose = ""
    if command_code is not None and fail.exit_code is not None:
        whose = " (its exit code is that of Snakemake inside the job)"
    lines.append(f"AWS Batch reported for rule '{rule}'{whose}: {fail.summary()}.")
    if fail.log_stream:
        lines.append(f"Log stream: {log_group}/{fail.log_stream}")
        url = logs_url(region, log_group, fail.log_stream)
        if url:
            lines.append(f"Logs: {url}")
    url = console_url(region, fail.job_id)
    if url:
        lines.append(f"Console: {url}")
    for tail in tails:
        if tail.error:
            lines.append(f"(The log {tail.stream} could not be read: {tail.error}.)")
        elif tail.lines:
            of = f" of {tail.label}" if tail.label else ""
            shown = tail.lines[-SHOWN_LOG_LINES:]
            lines.append(f"Last lines of the log{of}:\n    " + "\n    ".join(shown))
    return "\n".join(lines)
