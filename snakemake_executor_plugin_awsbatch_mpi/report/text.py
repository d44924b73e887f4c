"""A report as terminal text and as a JSON document (pure); the HTML page reuses the cells.

Durations are short (12.3s, 4m05s, 2h03m) so that a table per rule fits a terminal; long lists
(retries, failures) are cut in the terminal and complete in the HTML and JSON.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .model import JobRow, Prices, Report, percentile


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
    if t.fallbacks:
        parts.append(f"{t.fallbacks} resubmitted to the on-demand fallback queue")
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
    moved = [f"  {line}" for line in fallback_lines(report.rows)]
    if moved:
        out.append("Jobs resubmitted to the on-demand fallback queue after a Spot reclaim:")
        out += _first(moved)
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


def fallback_lines(rows: Iterable[JobRow]) -> list[str]:
    """One line per job that replaced a Spot-reclaimed job in the fallback queue."""
    return [
        f"{row.label}: {row.fallback_of} (Spot reclaimed) -> {row.job_id} on queue "
        f"'{row.queue}', {row.status}"
        for row in rows
        if row.fallback_of
    ]


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
            "fallback_of": r.fallback_of or None, "replaced_by": r.replaced_by or None,
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
            "unfinished": t.unfinished, "fallbacks": t.fallbacks, "start": t.start,
            "end": t.end,
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
