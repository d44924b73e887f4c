"""CloudWatch tails of failed jobs: read them once and keep a copy next to the workflow.

CloudWatch's log APIs have low, hard limits, so logs are only read for failed jobs, once, and
saved under `.snakemake/awsbatch-mpi/logs/` where the failure message points.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from .status import LogTail

LOG_DIR = Path(".snakemake/awsbatch-mpi/logs")


def saved_log_path(rule: str, job_id: str, label: str, log_dir: Path = LOG_DIR) -> Path:
    suffix = f"-{label}" if label else ""
    return log_dir / f"{rule}-{job_id}{suffix}.log"


def fetch_tails(
    batch: Any,
    log_group: str,
    streams: Iterable[tuple[str, str]],
    lines: int,
    rule: str,
    job_id: str,
    log_dir: Path = LOG_DIR,
) -> list[LogTail]:
    """The last `lines` of each (label, stream), each saved to its own file."""
    tails = []
    for label, stream in streams:
        try:
            text = batch.log_tail(log_group, stream, lines)
        except (ClientError, BotoCoreError) as err:
            tails.append(LogTail(label, stream, error=str(err)))
            continue
        if not text:
            tails.append(LogTail(label, stream))
            continue
        path = saved_log_path(rule, job_id, label, log_dir)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(text) + "\n")
        tails.append(LogTail(label, stream, tuple(text), str(path)))
    return tails
