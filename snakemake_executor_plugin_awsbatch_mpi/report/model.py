"""A run's Batch records → one row per job → per-rule tables and totals (pure).

Everything here reads DescribeJobs answers only: Batch keeps them (about 7 days) after the
client has gone, so `awsbatch-mpi report` works on any machine and the end-of-run report is
the same document. Times are epoch seconds; durations seconds.

- queue wait: submitted (`createdAt`) → first attempt started. Without --immediate-submit a
  job is submitted when it is ready, so this is time spent waiting for capacity; under
  --immediate-submit it also includes waiting for upstream jobs (PENDING).
- run time: the sum of the attempts' running times (a reclaimed Spot attempt is paid for too).
- vCPU-/GPU-hours: requested vCPUs/GPUs × nodes × run time, i.e. what was reserved, not used.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..batch.status import SPOT_RECLAIM_PREFIX, attempt_reason

FAILED = "FAILED"
SUCCEEDED = "SUCCEEDED"
# The tag of a job the executor submitted again to the fallback (on-demand) queue after its
# Spot host was reclaimed: the id of the job it replaces.
FALLBACK_TAG = "snakemake-fallback-of"


@dataclass(frozen=True)
class Attempt:
    """One try of a job on an instance, as Batch recorded it."""

    started: float | None
    stopped: float | None
    reason: str = ""
    exit_code: int | None = None

    @property
    def seconds(self) -> float:
        if self.started is None or self.stopped is None:
            return 0.0
        return max(0.0, self.stopped - self.started)

    @property
    def reclaimed(self) -> bool:
        return self.reason.startswith(SPOT_RECLAIM_PREFIX)


@dataclass(frozen=True)
class Node:
    """One node of a multi-node job (DescribeJobs of `<id>#<index>`)."""

    index: int
    status: str
    started: float | None
    stopped: float | None
    exit_code: int | None = None


@dataclass(frozen=True)
class JobRow:
    """Everything the report says about one Batch job (or one array child)."""

    job_id: str
    rule: str
    wildcards: str
    queue: str
    status: str
    reason: str
    submitted: float | None
    started: float | None
    stopped: float | None
    vcpus: float
    memory_mib: int
    gpus: int
    nodes: int = 1
    attempts: tuple[Attempt, ...] = ()
    node_rows: tuple[Node, ...] = ()
    exit_code: int | None = None
    # The Spot-reclaimed job this one replaces in the fallback queue ("" if none), and the job
    # that replaced this one (set when both are in the run).
    fallback_of: str = ""
    replaced_by: str = ""

    @property
    def first_start(self) -> float | None:
        starts = [a.started for a in self.attempts if a.started is not None]
        return min(starts) if starts else self.started

    @property
    def queue_wait(self) -> float | None:
        if self.submitted is None or self.first_start is None:
            return None
        return max(0.0, self.first_start - self.submitted)

    @property
    def run_seconds(self) -> float:
        if self.attempts:
            return sum(a.seconds for a in self.attempts)
        if self.started is not None and self.stopped is not None:
            return max(0.0, self.stopped - self.started)
        return 0.0

    @property
    def failed(self) -> bool:
        """Failed for good: a job replaced in the fallback queue is counted by its successor."""
        return self.status == FAILED and not self.replaced_by

    @property
    def finished(self) -> bool:
        return self.status in (FAILED, SUCCEEDED)

    @property
    def retries(self) -> int:
        """Attempts Batch started again by itself (Snakemake's --retries are new jobs)."""
        return max(0, len(self.attempts) - 1)

    @property
    def reclaims(self) -> int:
        return sum(a.reclaimed for a in self.attempts)

    @property
    def vcpu_hours(self) -> float:
        return self.vcpus * self.nodes * self.run_seconds / 3600

    @property
    def gpu_hours(self) -> float:
        return self.gpus * self.nodes * self.run_seconds / 3600

    @property
    def node_hours(self) -> float:
        """Instance time of the job: one per node (an MPI job's nodes are whole instances)."""
        return self.nodes * self.run_seconds / 3600

    @property
    def label(self) -> str:
        return f"{self.rule} {self.wildcards}".strip()


@dataclass(frozen=True)
class Prices:
    """Prices the user gave; a cost is only ever computed from these (never invented)."""

    vcpu_hour: float | None = None
    gpu_hour: float | None = None

    @property
    def given(self) -> bool:
        return self.vcpu_hour is not None or self.gpu_hour is not None

    def cost(self, vcpu_hours: float, gpu_hours: float) -> float | None:
        if not self.given:
            return None
        return vcpu_hours * (self.vcpu_hour or 0.0) + gpu_hours * (self.gpu_hour or 0.0)


@dataclass(frozen=True)
class RuleStats:
    rule: str
    jobs: int
    failed: int
    retried: int
    reclaims: int
    wait_p50: float | None
    wait_p95: float | None
    run_p50: float | None
    run_max: float | None
    vcpu_hours: float
    gpu_hours: float
    cost: float | None = None


@dataclass(frozen=True)
class Totals:
    jobs: int
    failed: int
    retried: int
    reclaims: int
    unfinished: int
    start: float | None
    end: float | None
    job_seconds: float
    vcpu_hours: float
    gpu_hours: float
    cost: float | None = None
    # Jobs submitted again to the fallback (on-demand) queue after a Spot reclaim.
    fallbacks: int = 0

    @property
    def wall_seconds(self) -> float:
        if self.start is None or self.end is None:
            return 0.0
        return max(0.0, self.end - self.start)


@dataclass(frozen=True)
class Report:
    run_id: str
    rows: tuple[JobRow, ...]
    rules: tuple[RuleStats, ...]
    totals: Totals
    prices: Prices = field(default_factory=Prices)


# --- DescribeJobs answers → rows -------------------------------------------------------------


def _seconds(ms: Any) -> float | None:
    return ms / 1000.0 if isinstance(ms, int | float) and ms > 0 else None


def requirements(container: Mapping[str, Any]) -> tuple[float, int, int]:
    """(vCPUs, MiB, GPUs) from resourceRequirements, else the legacy vcpus/memory fields."""
    found = {r.get("type"): r.get("value") for r in container.get("resourceRequirements") or []}
    vcpus = float(found.get("VCPU") or container.get("vcpus") or 0)
    memory = int(float(found.get("MEMORY") or container.get("memory") or 0))
    gpus = int(float(found.get("GPU") or 0))
    return vcpus, memory, gpus


def _job_container(desc: Mapping[str, Any]) -> Mapping[str, Any]:
    container = desc.get("container") or {}
    if container.get("resourceRequirements") or container.get("vcpus"):
        return container
    for group in (desc.get("nodeProperties") or {}).get("nodeRangeProperties") or []:
        if group.get("container"):
            return group["container"]
    return container


def queue_name(arn: str) -> str:
    return arn.rsplit("/", 1)[-1] if arn else ""


def wildcards_from_name(name: str, rule: str) -> str:
    """The wildcard values `naming.job_name` appended to the rule (`rule-v1-v2` → `v1-v2`)."""
    safe_rule = re.sub(r"[^A-Za-z0-9_-]+", "_", rule).strip("_-")
    if safe_rule and name.startswith(safe_rule + "-"):
        return name[len(safe_rule) + 1 :]
    return ""


def attempts_of(desc: Mapping[str, Any]) -> tuple[Attempt, ...]:
    found = []
    for attempt in desc.get("attempts") or []:
        reason = attempt_reason(attempt)
        found.append(
            Attempt(
                started=_seconds(attempt.get("startedAt")),
                stopped=_seconds(attempt.get("stoppedAt")),
                reason="" if reason == "no reason given" else reason,
                exit_code=(attempt.get("container") or {}).get("exitCode"),
            )
        )
    return tuple(found)


def _node(desc: Mapping[str, Any]) -> Node:
    index = (desc.get("nodeDetails") or {}).get("nodeIndex")
    if index is None:
        index = int(str(desc.get("jobId", "#0")).rsplit("#", 1)[-1] or 0)
    return Node(
        index=int(index),
        status=desc.get("status", "?"),
        started=_seconds(desc.get("startedAt")),
        stopped=_seconds(desc.get("stoppedAt")),
        exit_code=(desc.get("container") or {}).get("exitCode"),
    )


def job_row(
    desc: Mapping[str, Any],
    parent: Mapping[str, Any] | None = None,
    nodes: Sequence[Mapping[str, Any]] = (),
) -> JobRow:
    """One row from a job's description (`parent`: the array parent of a child)."""
    tags = desc.get("tags") or (parent or {}).get("tags") or {}
    name = desc.get("jobName", "")
    rule = tags.get("snakemake-rule") or name or "?"
    index = (desc.get("arrayProperties") or {}).get("index")
    wildcards = f"[{index}]" if index is not None else wildcards_from_name(name, rule)
    vcpus, memory, gpus = requirements(_job_container(desc))
    container = desc.get("container") or {}
    attempts = attempts_of(desc)
    exit_code = container.get("exitCode")
    if exit_code is None and attempts:
        exit_code = attempts[-1].exit_code
    return JobRow(
        job_id=desc.get("jobId", "?"),
        rule=rule,
        wildcards=wildcards,
        queue=queue_name(desc.get("jobQueue") or (parent or {}).get("jobQueue", "")),
        status=desc.get("status", "?"),
        reason=desc.get("statusReason") or (attempts[-1].reason if attempts else ""),
        submitted=_seconds(desc.get("createdAt")),
        started=_seconds(desc.get("startedAt")),
        stopped=_seconds(desc.get("stoppedAt")),
        vcpus=vcpus,
        memory_mib=memory,
        gpus=gpus,
        nodes=int((desc.get("nodeProperties") or {}).get("numNodes") or 1),
        attempts=attempts,
        node_rows=tuple(sorted((_node(n) for n in nodes), key=lambda n: n.index)),
        exit_code=exit_code,
        fallback_of=str(tags.get(FALLBACK_TAG) or ""),
    )


def is_array_parent(desc: Mapping[str, Any]) -> bool:
    props = desc.get("arrayProperties") or {}
    return bool(props.get("size")) and "index" not in props


def job_rows(
    descriptions: Iterable[Mapping[str, Any]],
    details: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
) -> list[JobRow]:
    """Rows of a run: barriers left out, array parents replaced by their children.

    `details[job id]`: the descriptions of an array job's children (`<id>:<i>`) or of a
    multi-node job's nodes (`<id>#<i>`); an array parent without them stays one row.
    """
    details = details or {}
    rows = []
    for desc in descriptions:
        if (desc.get("tags") or {}).get("snakemake-barrier") == "true":
            continue
        extra = details.get(desc.get("jobId", ""), ())
        if is_array_parent(desc) and extra:
            rows += [job_row(child, parent=desc) for child in extra]
        else:
            rows.append(job_row(desc, nodes=extra))
    successors = {row.fallback_of: row.job_id for row in rows if row.fallback_of}
    rows = [
        replace(row, replaced_by=successors[row.job_id]) if row.job_id in successors else row
        for row in rows
    ]
    return sorted(rows, key=lambda r: (r.submitted or 0.0, r.rule, r.wildcards, r.job_id))


# --- rows → tables ---------------------------------------------------------------------------


def percentile(values: Sequence[float], share: float) -> float | None:
    """Nearest-rank percentile (a value that occurred; None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def rule_stats(rule: str, rows: Sequence[JobRow], prices: Prices) -> RuleStats:
    waits = [w for r in rows if (w := r.queue_wait) is not None]
    runs = [r.run_seconds for r in rows if r.attempts or r.started is not None]
    vcpu_hours = sum(r.vcpu_hours for r in rows)
    gpu_hours = sum(r.gpu_hours for r in rows)
    return RuleStats(
        rule=rule,
        jobs=len(rows),
        failed=sum(r.failed for r in rows),
        retried=sum(r.retries > 0 for r in rows),
        reclaims=sum(r.reclaims for r in rows),
        wait_p50=percentile(waits, 0.5),
        wait_p95=percentile(waits, 0.95),
        run_p50=percentile(runs, 0.5),
        run_max=max(runs) if runs else None,
        vcpu_hours=vcpu_hours,
        gpu_hours=gpu_hours,
        cost=prices.cost(vcpu_hours, gpu_hours),
    )


def totals(rows: Sequence[JobRow], prices: Prices) -> Totals:
    starts = [r.submitted for r in rows if r.submitted is not None]
    ends = [t for r in rows for t in (r.stopped, *(a.stopped for a in r.attempts)) if t]
    vcpu_hours = sum(r.vcpu_hours for r in rows)
    gpu_hours = sum(r.gpu_hours for r in rows)
    return Totals(
        jobs=len(rows),
        failed=sum(r.failed for r in rows),
        retried=sum(r.retries > 0 for r in rows),
        reclaims=sum(r.reclaims for r in rows),
        unfinished=sum(not r.finished for r in rows),
        start=min(starts) if starts else None,
        end=max(ends) if ends else None,
        job_seconds=sum(r.run_seconds for r in rows),
        vcpu_hours=vcpu_hours,
        gpu_hours=gpu_hours,
        cost=prices.cost(vcpu_hours, gpu_hours),
        fallbacks=sum(bool(r.fallback_of) for r in rows),
    )


def build_report(
    run_id: str,
    descriptions: Iterable[Mapping[str, Any]],
    details: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    prices: Prices | None = None,
) -> Report:
    prices = prices or Prices()
    rows = job_rows(descriptions, details)
    by_rule: dict[str, list[JobRow]] = {}
    for row in rows:
        by_rule.setdefault(row.rule, []).append(row)
    return Report(
        run_id=run_id,
        rows=tuple(rows),
        rules=tuple(rule_stats(rule, by_rule[rule], prices) for rule in sorted(by_rule)),
        totals=totals(rows, prices),
        prices=prices,
    )
