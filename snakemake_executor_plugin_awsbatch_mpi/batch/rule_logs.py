"""The `log:` files of a failed rule, read back from storage (issue 19 §4).

When a rule with `log:` fails, the cause is usually in its own log (a tool's usage message,
"fail to locate the index files"), not in Snakemake's lines around it. In a storage run that
file exists only in S3: the job uploads it even when the rule fails, so Snakemake's
`--show-failed-logs` finds no local copy ("Logfile ... not found"). The executor therefore
reads the end of each log object once, for failed jobs only, bounded in bytes and lines like
the CloudWatch tail (`logs.py`), keeps a copy next to the saved job log and shows it first in
the failure message.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from .logs import LOG_DIR

# At most this much of the end of each log object is read (a rule may log gigabytes).
MAX_RULE_LOG_BYTES = 64 * 1024
# Lines of each rule log shown in the failure message (the saved copy keeps what was read).
SHOWN_RULE_LOG_LINES = 25
_NOT_FOUND = ("NoSuchKey", "404", "NotFound")


@dataclass(frozen=True)
class RuleLog:
    """The end of one `log:` file of a failed job, as read from storage."""

    url: str
    lines: tuple[str, ...] = ()
    size: int = 0  # the whole object's size in bytes
    truncated: bool = False  # lines before the first one shown were left out
    missing: bool = False  # no such object: the job failed before the rule wrote it
    error: str | None = None  # the object could not be read
    saved: str | None = None  # the local copy


def _decode_tail(data: bytes, size: int, max_lines: int) -> tuple[tuple[str, ...], bool]:
    """The last `max_lines` lines of the end of an object; whether any were left out.

    A tail that does not start at the object's first byte begins mid-line: that partial
    line is dropped.
    """
    text = data.decode("utf-8", errors="replace")
    lines = text.splitlines()
    cut = len(data) < size
    if cut and lines:
        lines = lines[1:]
    if len(lines) > max_lines:
        lines, cut = lines[-max_lines:], True
    return tuple(lines), cut


def saved_rule_log_path(rule: str, job_id: str, url: str, log_dir: Path = LOG_DIR) -> Path:
    """Where the copy of a rule log goes: next to the job's saved CloudWatch log."""
    name = url.rstrip("/").rpartition("/")[2] or "log"
    return log_dir / f"{rule}-{job_id}-rule-{name}"


def fetch_rule_logs(
    batch: Any,
    urls: Iterable[str],
    rule: str,
    job_id: str,
    max_lines: int,
    max_bytes: int = MAX_RULE_LOG_BYTES,
    log_dir: Path = LOG_DIR,
) -> list[RuleLog]:
    """The end of each `s3://` log object (one ranged GET each), each saved locally.

    A missing object or a read error is reported in the RuleLog, never raised: the failure
    message must come out whatever happens to the log.
    """
    found = []
    for url in dict.fromkeys(u for u in urls if u.startswith("s3://")):
        try:
            data, size = batch.object_tail(url, max_bytes)
        except ClientError as err:
            code = str(err.response.get("Error", {}).get("Code", ""))
            if code in _NOT_FOUND:
                found.append(RuleLog(url, missing=True))
            else:
                found.append(RuleLog(url, error=str(err)))
            continue
        except BotoCoreError as err:
            found.append(RuleLog(url, error=str(err)))
            continue
        lines, truncated = _decode_tail(data, size, max_lines)
        saved = None
        if lines:
            path = saved_rule_log_path(rule, job_id, url, log_dir)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("\n".join(lines) + "\n")
            saved = str(path)
        found.append(RuleLog(url, lines, size, truncated, saved=saved))
    return found


def rule_log_lines(logs: Sequence[RuleLog], shown: int = SHOWN_RULE_LOG_LINES) -> list[str]:
    """The failure message's block about the rule's own logs, one entry per log file."""
    out = []
    for log in logs:
        if log.error:
            out.append(f"The rule's log {log.url} could not be read from storage: {log.error}.")
        elif log.missing:
            out.append(
                f"The rule's log {log.url} is not in storage: the job ended before the rule "
                "wrote it (see the job's log below)."
            )
        elif not log.lines:
            out.append(f"The rule's log {log.url} is empty.")
        else:
            lines = log.lines[-shown:]
            earlier = log.truncated or len(log.lines) > len(lines)
            which = f"last {len(lines)} lines" if earlier else "all of it"
            out.append(
                f"The rule's own log {log.url} ({which}):\n    " + "\n    ".join(lines)
            )
    return out


__all__ = [
    "MAX_RULE_LOG_BYTES",
    "SHOWN_RULE_LOG_LINES",
    "RuleLog",
    "fetch_rule_logs",
    "rule_log_lines",
    "saved_rule_log_path",
]
