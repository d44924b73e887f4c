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
from dataclasses import dataclass, field
from typing import Any

from ..status import SPOT_RECLAIM_PREFIX, attempt_reason

FAILED = "FAILED"
SUCCEEDED = "SUCCEEDED"


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
        return self.status == FAILED

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


# --- text and JSON ---------------------------------------------------------------------------


def duration(seconds: float | None) -> str:
    """12.3s, 4m05s, 2h03m: short enough for a table cell."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"


def hours(value: float) -> str:
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def money(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.4f}" if value < 1 else f"{value:.2f}"


RULE_COLUMNS = (
    "rule", "jobs", "failed", "retried", "wait p50", "wait p95", "run p50", "run max",
    "vCPU-h", "GPU-h",
)  # fmt: skip


def rule_table(report: Report) -> list[list[str]]:
    """Header + one line per rule + `all`, as cells (shared by the terminal and the HTML)."""
    cost = report.prices.given
    header = [*RULE_COLUMNS, *(["cost*"] if cost else [])]
    lines = [header]
    for s in report.rules:
        lines.append(
            [
                s.rule, str(s.jobs), str(s.failed), str(s.retried),
                duration(s.wait_p50), duration(s.wait_p95), duration(s.run_p50),
                duration(s.run_max), hours(s.vcpu_hours), hours(s.gpu_hours),
                *([money(s.cost)] if cost else []),
            ]
        )  # fmt: skip
    t = report.totals
    all_waits = [w for r in report.rows if (w := r.queue_wait) is not None]
    all_runs = [r.run_seconds for r in report.rows if r.attempts or r.started is not None]
    lines.append(
        [
            "all", str(t.jobs), str(t.failed), str(t.retried),
            duration(percentile(all_waits, 0.5)), duration(percentile(all_waits, 0.95)),
            duration(percentile(all_runs, 0.5)), duration(max(all_runs) if all_runs else None),
            hours(t.vcpu_hours), hours(t.gpu_hours), *([money(t.cost)] if cost else []),
        ]
    )  # fmt: skip
    return lines


def summary_line(report: Report) -> str:
    """One sentence with the totals (the executor logs it at the end of every run)."""
    t = report.totals
    parts = [f"{t.jobs} job(s)"]
    if t.failed:
        parts.append(f"{t.failed} failed")
    if t.retried:
        parts.append(f"{t.retried} retried by Batch ({t.reclaims} Spot reclaim(s))")
    if t.unfinished:
        parts.append(f"{t.unfinished} not finished yet")
    text = (
        f"Run {report.run_id}: {', '.join(parts)}; wall time {duration(t.wall_seconds)}, "
        f"job time {duration(t.job_seconds)}, {hours(t.vcpu_hours)} vCPU-hours, "
        f"{hours(t.gpu_hours)} GPU-hours"
    )
    if t.cost is not None:
        text += f", estimated cost {money(t.cost)} (from the prices given)"
    return text + "."


def format_text(report: Report) -> str:
    lines = rule_table(report)
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    out = [f"Run {report.run_id} (from AWS Batch's records):"]
    for line in lines:
        out.append("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)))
    t = report.totals
    parallel = t.job_seconds / t.wall_seconds if t.wall_seconds else 0.0
    out.append(
        f"Wall time {duration(t.wall_seconds)} (first submission to last stop) against "
        f"{duration(t.job_seconds)} of job run time: {parallel:.1f} jobs running on average."
    )
    reasons = [f"  {row.label} ({row.job_id}): {why}" for row, why in retry_reasons(report.rows)]
    if reasons:
        out.append("Attempts Batch ended and retried:")
        out += _first(reasons)
    failures = [
        f"  {r.label} ({r.job_id}): {r.reason or 'no reason given'}"
        + (f", exit code {r.exit_code}" if r.exit_code is not None else "")
        for r in report.rows
        if r.failed
    ]
    if failures:
        out.append("Failed jobs:")
        out += _first(failures)
    if t.unfinished:
        out.append(f"{t.unfinished} job(s) have not finished: their times are partial.")
    if t.cost is not None:
        out.append(cost_note(report.prices))
    return "\n".join(out)


TEXT_LIST_LINES = 20


def _first(lines: list[str]) -> list[str]:
    """At most TEXT_LIST_LINES lines in the terminal; the HTML and JSON have them all."""
    if len(lines) <= TEXT_LIST_LINES:
        return lines
    more = len(lines) - TEXT_LIST_LINES
    return [*lines[:TEXT_LIST_LINES], f"  ... and {more} more (all in --html and --json)."]


def cost_note(prices: Prices) -> str:
    given = []
    if prices.vcpu_hour is not None:
        given.append(f"{prices.vcpu_hour} per vCPU-hour")
    if prices.gpu_hour is not None:
        given.append(f"{prices.gpu_hour} per GPU-hour")
    return (
        f"* cost: an estimate from the prices you gave ({', '.join(given)}) times the "
        "requested vCPUs/GPUs and run time; not a bill (instances may be larger than the jobs)."
    )


def retry_reasons(rows: Iterable[JobRow]) -> list[tuple[JobRow, str]]:
    """(job, why) for every attempt Batch ended and then ran again."""
    found = []
    for row in rows:
        for number, attempt in enumerate(row.attempts[:-1], start=1):
            found.append((row, f"attempt {number}: {attempt.reason or 'no reason given'}"))
    return found


def to_dict(report: Report) -> dict[str, Any]:
    """A JSON-ready document: every row, the tables and the totals."""

    def row(r: JobRow) -> dict[str, Any]:
        return {
            "job_id": r.job_id, "rule": r.rule, "wildcards": r.wildcards, "queue": r.queue,
            "status": r.status, "reason": r.reason, "exit_code": r.exit_code,
            "submitted": r.submitted, "started": r.first_start, "stopped": r.stopped,
            "queue_wait_seconds": r.queue_wait, "run_seconds": r.run_seconds,
            "vcpus": r.vcpus, "memory_mib": r.memory_mib, "gpus": r.gpus, "nodes": r.nodes,
            "vcpu_hours": r.vcpu_hours, "gpu_hours": r.gpu_hours, "node_hours": r.node_hours,
            "attempts": [
                {"started": a.started, "stopped": a.stopped, "reason": a.reason,
                 "exit_code": a.exit_code, "spot_reclaim": a.reclaimed}
                for a in r.attempts
            ],
            "nodes_detail": [
                {"index": n.index, "status": n.status, "started": n.started,
                 "stopped": n.stopped, "exit_code": n.exit_code}
                for n in r.node_rows
            ],
        }  # fmt: skip

    t = report.totals
    return {
        "run_id": report.run_id,
        "prices": {"vcpu_hour": report.prices.vcpu_hour, "gpu_hour": report.prices.gpu_hour},
        "totals": {
            "jobs": t.jobs, "failed": t.failed, "retried": t.retried, "reclaims": t.reclaims,
            "unfinished": t.unfinished, "start": t.start, "end": t.end,
            "wall_seconds": t.wall_seconds, "job_seconds": t.job_seconds,
            "vcpu_hours": t.vcpu_hours, "gpu_hours": t.gpu_hours, "estimated_cost": t.cost,
            "node_hours": sum(r.node_hours for r in report.rows),
        },  # fmt: skip
        "rules": [
            {
                "rule": s.rule, "jobs": s.jobs, "failed": s.failed, "retried": s.retried,
                "reclaims": s.reclaims, "wait_p50": s.wait_p50, "wait_p95": s.wait_p95,
                "run_p50": s.run_p50, "run_max": s.run_max, "vcpu_hours": s.vcpu_hours,
                "gpu_hours": s.gpu_hours, "estimated_cost": s.cost,
            }  # fmt: skip
            for s in report.rules
        ],
        "jobs": [row(r) for r in report.rows],
    }
