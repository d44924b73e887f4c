"""The run's timeline as plain SVG (pure): one lane per job, or per rule when there are many.

Plain SVG written here instead of a plotting library: the plugin's core stays free of a
heavy dependency, the file opens offline in any browser, and the drawing needed (bars on a
time axis, tooltips through SVG `<title>`) is a few dozen lines.

Per-job lanes (one per node for a multi-node job): waiting is a thin pale bar, running a
full bar in the rule's colour; an attempt Batch ended and retried (e.g. a Spot reclaim) is
outlined dark with a ▼ at its end, a failed job's last attempt outlined red with a ✕.
Above `MAX_LANES` lanes, each rule gets one lane showing how many of its jobs were running
(solid) and waiting (pale) over time, with failures (red) and retries (dark) as ticks.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from .model import JobRow, Report
from .text import duration

# Tableau 20: ten hues, each dark and light; distinct, and known to readers of plots.
PALETTE = (
    "#4e79a7", "#a0cbe8", "#f28e2b", "#ffbe7d", "#59a14f", "#8cd17d", "#b6992d", "#f1ce63",
    "#499894", "#86bcb6", "#e15759", "#ff9d9a", "#79706e", "#bab0ac", "#d37295", "#fabfd2",
    "#b07aa1", "#d4a6c8", "#9d7660", "#d7b5a6",
)  # fmt: skip
FAIL_COLOUR = "#d62728"
RETRY_COLOUR = "#222222"
MAX_LANES = 300
WIDTH = 1200
LABEL_WIDTH = 240
LANE = 16
RULE_LANE = 44
AXIS = 28
BINS = 240
TICK_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 43200, 86400)


def preferred_colour(rule: str) -> int:
    """The rule's place in `PALETTE`, from a stable hash of its name (CRC-32, not hash())."""
    return zlib.crc32(rule.encode("utf-8")) % len(PALETTE)


def rule_colours(rules: Sequence[str]) -> dict[str, str]:
    """Each rule's colour, derived from its name, so that it keeps it from report to report.

    (Assigning colours by a rule's place among the rules of a run changed them whenever
    another set of rules ran.) Two rules of one report never share a colour: the later one
    by name takes the next free colour, so only such a pair can differ between reports.
    """
    taken: set[int] = set()
    colours = {}
    for rule in sorted(set(rules)):
        index = preferred_colour(rule)
        for step in range(len(PALETTE)):
            candidate = (index + step) % len(PALETTE)
            if candidate not in taken or len(taken) >= len(PALETTE):
                index = candidate
                break
        taken.add(index)
        colours[rule] = PALETTE[index]
    return colours


@dataclass(frozen=True)
class Axis:
    start: float
    end: float
    left: float = LABEL_WIDTH
    width: float = WIDTH - LABEL_WIDTH - 10

    def x(self, t: float) -> float:
        span = max(self.end - self.start, 1e-9)
        return self.left + (min(max(t, self.start), self.end) - self.start) / span * self.width


def _axis_of(report: Report) -> Axis:
    t = report.totals
    start = t.start or 0.0
    end = t.end if t.end and t.end > start else start + 1.0
    latest = [x for r in report.rows for x in (r.started, r.stopped) if x]
    return Axis(start, max([end, *latest]))


def _ticks(axis: Axis, height: float) -> list[str]:
    span = axis.end - axis.start
    step = next((s for s in TICK_STEPS if span / s <= 10), TICK_STEPS[-1])
    out = []
    n = 0
    while n * step <= span + 1e-9:
        x = axis.x(axis.start + n * step)
        out.append(
            f'<line x1="{x:.1f}" y1="{AXIS - 6}" x2="{x:.1f}" y2="{height:.1f}" class="grid"/>'
            f'<text x="{x:.1f}" y="{AXIS - 10}" class="tick">{duration(n * step)}</text>'
        )
        n += 1
    return out


def _rect(x1: float, x2: float, y: float, h: float, cls: str, colour: str, title: str) -> str:
    w = max(x2 - x1, 1.0)
    return (
        f'<rect x="{x1:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" class="{cls}" '
        f'fill="{colour}"><title>{escape(title)}</title></rect>'
    )


def _job_lane(row: JobRow, axis: Axis, y: float, colour: str, node: int | None) -> list[str]:
    """Waiting and running bars of one job (or one node of it) and its markers."""
    parts: list[str] = []
    name = row.label + (f" · node {node}" if node is not None else "")
    end_of_axis = axis.end
    if node is not None:
        info = next(n for n in row.node_rows if n.index == node)
        spans = [(info.started, info.stopped or end_of_axis, "", info.status == "FAILED")]
    else:
        spans = [
            (a.started, a.stopped or end_of_axis, a.reason, False) for a in row.attempts
        ] or [(row.started, row.stopped or end_of_axis, "", False)]
    waiting_from = row.submitted
    for number, (started, stopped, reason, node_failed) in enumerate(spans, start=1):
        if started is None:
            break
        if waiting_from is not None and started > waiting_from:
            parts.append(
                _rect(
                    axis.x(waiting_from), axis.x(started), y + LANE * 0.35, LANE * 0.3,
                    "wait", colour, f"{name}: waiting {duration(started - waiting_from)}",
                )
            )  # fmt: skip
        retried = number < len(spans) and node is None
        last_failed = (number == len(spans) and row.failed) or node_failed
        cls = "run retried" if retried else ("run failed" if last_failed else "run")
        why = f" — ended: {reason}" if reason and (retried or last_failed) else ""
        title = f"{name}: attempt {number}, running {duration(stopped - started)}{why}"
        parts.append(
            _rect(axis.x(started), axis.x(stopped), y + 2, LANE - 4, cls, colour, title)
        )
        x = axis.x(stopped)
        if retried:
            parts.append(f'<text x="{x:.1f}" y="{y + LANE - 3:.1f}" class="mark retry">▼</text>')
        elif last_failed:
            parts.append(f'<text x="{x + 2:.1f}" y="{y + LANE - 3:.1f}" class="mark fail">✕</text>')
        waiting_from = stopped
    if row.submitted is not None and not spans[0][0]:
        # Never started: waiting until it was given up (e.g. a failed dependency) or until now.
        until = row.stopped or end_of_axis
        why = f" ({row.reason})" if row.reason else ""
        parts.append(
            _rect(
                axis.x(row.submitted), axis.x(until), y + LANE * 0.35, LANE * 0.3,
                "wait", colour, f"{name}: {row.status}, not started{why}",
            )
        )  # fmt: skip
        if row.failed:
            x = axis.x(until) + 2
            parts.append(f'<text x="{x:.1f}" y="{y + LANE - 3:.1f}" class="mark fail">✕</text>')
    label = escape(name if len(name) <= 38 else name[:37] + "…")
    parts.append(
        f'<text x="{LABEL_WIDTH - 6}" y="{y + LANE - 4:.1f}" class="label">{label}</text>'
    )
    return parts


def _lanes(report: Report) -> list[tuple[JobRow, int | None]]:
    lanes: list[tuple[JobRow, int | None]] = []
    for row in report.rows:
        if row.nodes > 1 and row.node_rows:
            lanes += [(row, n.index) for n in row.node_rows]
        else:
            lanes.append((row, None))
    return lanes


def _occupancy(rows: Sequence[JobRow], axis: Axis) -> tuple[list[float], list[float]]:
    """Jobs running and waiting, averaged over each of BINS slices of the time axis."""
    running = [0.0] * BINS
    waiting = [0.0] * BINS
    span = max(axis.end - axis.start, 1e-9)
    width = span / BINS

    def add(counts: list[float], a: float | None, b: float | None, weight: float) -> None:
        if a is None or b is None or b <= a:
            return
        first = max(0, int((a - axis.start) / width))
        last = min(BINS - 1, int((b - axis.start) / width))
        for i in range(first, last + 1):
            lo = axis.start + i * width
            overlap = min(b, lo + width) - max(a, lo)
            if overlap > 0:
                counts[i] += weight * overlap / width

    for row in rows:
        waiting_from = row.submitted
        for a in row.attempts or ():
            add(waiting, waiting_from, a.started, 1)
            add(running, a.started, a.stopped or axis.end, 1)
            waiting_from = a.stopped
        if not row.attempts:
            add(waiting, row.submitted, row.started or axis.end, 1)
            add(running, row.started, row.stopped or axis.end, 1)
    return running, waiting


def _rule_lane(rule: str, rows: Sequence[JobRow], axis: Axis, y: float, colour: str) -> list[str]:
    running, waiting = _occupancy(rows, axis)
    peak = max(max(r + w for r, w in zip(running, waiting, strict=True)), 1e-9)
    h = RULE_LANE - 8
    base = y + RULE_LANE - 4
    step = axis.width / BINS
    parts = []
    for i, (run, wait) in enumerate(zip(running, waiting, strict=True)):
        x = axis.left + i * step
        if run > 0:
            rh = run / peak * h
            parts.append(
                f'<rect x="{x:.1f}" y="{base - rh:.1f}" width="{step + 0.3:.1f}" '
                f'height="{rh:.1f}" class="run" fill="{colour}"/>'
            )
        if wait > 0:
            wh = wait / peak * h
            top = base - run / peak * h - wh
            parts.append(
                f'<rect x="{x:.1f}" y="{top:.1f}" width="{step + 0.3:.1f}" height="{wh:.1f}" '
                f'class="wait" fill="{colour}"/>'
            )
    for row in rows:
        for a in row.attempts[:-1]:
            if a.stopped:
                x = axis.x(a.stopped)
                parts.append(
                    f'<line x1="{x:.1f}" y1="{y + 2:.1f}" x2="{x:.1f}" y2="{y + 10:.1f}" '
                    f'class="tick-retry"><title>{escape(row.label)}: {escape(a.reason)}</title>'
                    "</line>"
                )
        if row.failed and row.stopped:
            x = axis.x(row.stopped)
            parts.append(
                f'<line x1="{x:.1f}" y1="{base - 8:.1f}" x2="{x:.1f}" y2="{base + 3:.1f}" '
                f'class="tick-fail"><title>{escape(row.label)} failed: {escape(row.reason)}'
                "</title></line>"
            )
    peak_running = max(running)
    parts.append(
        f'<text x="{LABEL_WIDTH - 6}" y="{y + RULE_LANE / 2:.1f}" class="label">'
        f"{escape(rule)} ({len(rows)} jobs)</text>"
        f'<text x="{LABEL_WIDTH - 6}" y="{y + RULE_LANE / 2 + 13:.1f}" class="label small">'
        f"peak {peak:.0f} waiting+running, {peak_running:.0f} running</text>"
    )
    return parts


def timeline_svg(report: Report) -> str:
    """The timeline of a report as one `<svg>` element (empty run: a short note)."""
    if not report.rows:
        return '<p class="note">No jobs: nothing to draw.</p>'
    axis = _axis_of(report)
    colours = rule_colours([r.rule for r in report.rows])
    lanes = _lanes(report)
    body: list[str] = []
    if len(lanes) <= MAX_LANES:
        mode = "jobs"
        for i, (row, node) in enumerate(lanes):
            body += _job_lane(row, axis, AXIS + i * LANE, colours[row.rule], node)
        height = AXIS + len(lanes) * LANE + 6
    else:
        mode = "rules"
        by_rule: dict[str, list[JobRow]] = {}
        for row in report.rows:
            by_rule.setdefault(row.rule, []).append(row)
        for i, rule in enumerate(sorted(by_rule)):
            body += _rule_lane(rule, by_rule[rule], axis, AXIS + i * RULE_LANE, colours[rule])
        height = AXIS + len(by_rule) * RULE_LANE + 6
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" data-mode="{mode}" '
        f'width="{WIDTH}" height="{height:.0f}" viewBox="0 0 {WIDTH} {height:.0f}" '
        f'role="img" aria-label="Timeline of run {escape(report.run_id)}">'
        + "".join(_ticks(axis, height))
        + "".join(body)
        + "</svg>"
    )
