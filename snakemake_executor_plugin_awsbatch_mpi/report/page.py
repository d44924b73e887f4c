"""The report as one self-contained HTML file (pure): inline CSS and SVG, no script, no network.

A file that opens offline anywhere can be attached to a ticket or kept with the results.
The job list is complete but folded away when long; the timeline aggregates per rule then.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape

from .model import Report
from .text import (
    cost_note,
    duration,
    fallback_lines,
    retry_reasons,
    rule_table,
    summary_line,
)
from .timeline import FAIL_COLOUR, RETRY_COLOUR, rule_colours, timeline_svg

OPEN_JOB_LIST = 200

CSS = f"""
body {{ font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px;
       color: #222; background: #fff; }}
h1 {{ font-size: 20px; margin: 0 0 4px; }} h2 {{ font-size: 16px; margin: 24px 0 8px; }}
.note {{ color: #555; }}
table {{ border-collapse: collapse; font-variant-numeric: tabular-nums; }}
th, td {{ padding: 3px 10px; border-bottom: 1px solid #e3e3e3; text-align: right; }}
th:first-child, td:first-child, td.text {{ text-align: left; }}
tr.all td {{ font-weight: 600; border-top: 2px solid #999; }}
tr.failed td {{ background: #fdecec; }}
.legend span {{ display: inline-block; margin-right: 14px; }}
.swatch {{ display: inline-block; width: 14px; height: 10px; margin-right: 4px;
          vertical-align: middle; }}
.scroll {{ overflow-x: auto; border: 1px solid #ddd; padding: 4px; }}
svg.timeline text {{ font: 11px system-ui, sans-serif; fill: #333; }}
svg.timeline .label {{ text-anchor: end; }} svg.timeline .small {{ fill: #777; font-size: 10px; }}
svg.timeline .tick {{ text-anchor: middle; fill: #666; }}
svg.timeline .grid {{ stroke: #eee; }}
svg.timeline .wait {{ opacity: 0.35; }}
svg.timeline .run.retried {{ stroke: {RETRY_COLOUR}; stroke-width: 1.5; stroke-dasharray: 3 2; }}
svg.timeline .run.failed {{ stroke: {FAIL_COLOUR}; stroke-width: 2; }}
svg.timeline .mark {{ font-size: 10px; }}
svg.timeline .mark.fail {{ fill: {FAIL_COLOUR}; font-weight: bold; }}
svg.timeline .mark.retry {{ fill: {RETRY_COLOUR}; text-anchor: middle; }}
svg.timeline .tick-fail {{ stroke: {FAIL_COLOUR}; stroke-width: 2; }}
svg.timeline .tick-retry {{ stroke: {RETRY_COLOUR}; stroke-width: 1.5; }}
"""


def _when(t: float | None) -> str:
    if t is None:
        return "-"
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _table(lines: Sequence[Sequence[str]], classes: Sequence[str] = ()) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in lines[0])
    body = []
    for i, line in enumerate(lines[1:]):
        cls = classes[i] if i < len(classes) else ""
        cells = "".join(f"<td>{escape(c)}</td>" for c in line)
        body.append(f'<tr class="{cls}">{cells}</tr>' if cls else f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _legend(report: Report) -> str:
    colours = rule_colours([r.rule for r in report.rows])
    items = [
        f'<span><i class="swatch" style="background:{c}"></i>{escape(rule)}</span>'
        for rule, c in colours.items()
    ]
    items += [
        '<span><i class="swatch" style="background:#888;opacity:.35;height:4px"></i>'
        "waiting (submitted, not running)</span>",
        '<span><i class="swatch" style="background:#888"></i>running</span>',
        f'<span style="color:{RETRY_COLOUR}">▼ attempt ended, retried by Batch</span>',
        f'<span style="color:{FAIL_COLOUR}">✕ failed</span>',
    ]
    return f'<p class="legend">{"".join(items)}</p>'


def _jobs_table(report: Report) -> str:
    header = [
        "rule", "wildcards", "job id", "queue", "status", "attempts", "submitted (UTC)",
        "queue wait", "run time", "vCPU", "MiB", "GPU", "nodes", "reason",
    ]  # fmt: skip
    lines = [header]
    classes = []
    for r in report.rows:
        lines.append(
            [
                r.rule, r.wildcards, r.job_id, r.queue, r.status, str(len(r.attempts)),
                _when(r.submitted), duration(r.queue_wait), duration(r.run_seconds),
                f"{r.vcpus:g}", str(r.memory_mib), str(r.gpus), str(r.nodes),
                "; ".join(filter(None, [*(a.reason for a in r.attempts[:-1]), r.reason])),
            ]
        )  # fmt: skip
        classes.append("failed" if r.failed else "")
    opened = " open" if len(report.rows) <= OPEN_JOB_LIST else ""
    return (
        f"<details{opened}><summary>All {len(report.rows)} jobs</summary>"
        f"{_table(lines, classes)}</details>"
    )


def render_html(report: Report) -> str:
    t = report.totals
    run = escape(report.run_id)
    rules = rule_table(report)
    reasons = retry_reasons(report.rows)
    retries = "".join(
        f"<li>{escape(row.label)} ({escape(row.job_id)}): {escape(why)}</li>"
        for row, why in reasons
    )
    failures = "".join(
        f"<li>{escape(r.label)} ({escape(r.job_id)}): {escape(r.reason or 'no reason given')}"
        + (f", exit code {r.exit_code}" if r.exit_code is not None else "")
        + "</li>"
        for r in report.rows
        if r.failed
    )
    parallel = t.job_seconds / t.wall_seconds if t.wall_seconds else 0.0
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>AWS Batch run {run}</title><style>{CSS}</style></head><body>",
        f"<h1>AWS Batch run {run}</h1>",
        f'<p class="note">{escape(summary_line(report))} From {_when(t.start)} to '
        f"{_when(t.end)} UTC; {parallel:.1f} jobs running on average. Read from AWS Batch's "
        "own records (DescribeJobs).</p>",
        "<h2>Timeline</h2>",
        _legend(report),
        f'<div class="scroll">{timeline_svg(report)}</div>',
        "<h2>Per rule</h2>",
        _table(rules, [""] * (len(rules) - 2) + ["all"]),
        '<p class="note">Queue wait: submission to first start. Run time: all attempts. '
        "vCPU-/GPU-hours: requested × nodes × run time.</p>",
    ]
    if t.cost is not None:
        parts.append(f'<p class="note">{escape(cost_note(report.prices))}</p>')
    if retries:
        parts.append(f"<h2>Attempts Batch ended and retried</h2><ul>{retries}</ul>")
    moved = "".join(f"<li>{escape(line)}</li>" for line in fallback_lines(report.rows))
    if moved:
        parts.append(
            "<h2>Jobs resubmitted to the on-demand fallback queue after a Spot reclaim</h2>"
            f"<ul>{moved}</ul>"
        )
    if failures:
        parts.append(f"<h2>Failed jobs</h2><ul>{failures}</ul>")
    parts += ["<h2>Jobs</h2>", _jobs_table(report), "</body></html>"]
    return "\n".join(parts)
