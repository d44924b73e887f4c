"""The run report: where a run's time and vCPU/GPU-hours went, from AWS Batch's own records.

`model` turns DescribeJobs answers into rows, per-rule stats and totals; `text` writes the
terminal tables and the JSON; `timeline` draws the SVG; `page` writes the self-contained HTML
(all four pure). This module is the thin shell:
it reads the run's jobs through `runs` (the one place that lists and describes a run's jobs)
and writes the files. `awsbatch-mpi report` and the executor's end-of-run report both use it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .model import Prices, Report, build_report
from .page import render_html
from .text import format_text, summary_line, to_dict

REPORT_DIR = Path(".snakemake/awsbatch-mpi")


def report_path(run_id: str, directory: Path = REPORT_DIR) -> Path:
    return directory / f"report-{run_id}.html"


def load_report(
    batch: Any,
    run_id: str,
    queues: Iterable[str] = (),
    prices: Prices | None = None,
    known: Mapping[str, dict[str, Any]] | None = None,
) -> Report:
    """Describe the run's jobs (and their array children and MPI nodes) and build the report.

    `batch`: a boto3 Batch client (DescribeJobs, and ListJobs when the run record is absent).
    `known`: descriptions already at hand (the executor's last look at each ended job); only
    the others are described.
    """
    from ..batch import runs

    jobs = runs.find_run_jobs(batch, run_id, queues, known)
    return build_report(run_id, jobs, runs.run_details(batch, jobs, known), prices)


def write_html(report: Report, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(report), encoding="utf-8")
    return path


def write_json(report: Report, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(to_dict(report), indent=1) + "\n", encoding="utf-8")
    return path


def end_of_run_report(
    batch: Any,
    run_id: str,
    directory: Path = REPORT_DIR,
    known: Mapping[str, dict[str, Any]] | None = None,
) -> str | None:
    """Write the run's HTML report next to its logs; the one line to log (totals and path).

    None when the run submitted no job (nothing to report). `known`: what the status checks
    already described, so that the report adds no second round of DescribeJobs (an array
    job's children are all known; only the parents are described).
    """
    from ..batch import runs

    if not runs.recorded_job_ids(run_id):
        return None
    report = load_report(batch, run_id, known=known)
    path = write_html(report, report_path(run_id, directory))
    return f"{summary_line(report)} Report: {path}"


__all__ = [
    "Prices",
    "REPORT_DIR",
    "Report",
    "build_report",
    "end_of_run_report",
    "format_text",
    "load_report",
    "render_html",
    "report_path",
    "summary_line",
    "to_dict",
    "write_html",
    "write_json",
]
