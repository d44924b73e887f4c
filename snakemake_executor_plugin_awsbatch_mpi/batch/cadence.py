"""When to read job status next: status checks that follow the work (pure, no AWS).

Snakemake's remote executors check every `--seconds-between-status-checks` (10 s by default)
whatever happens. That is late for jobs that end seconds after they are submitted and
wasteful for jobs that run for hours. `StatusCadence` decides instead:

- soon (`fastest`) after a submission and after a check that saw a job change state;
- otherwise a little later each time (×`backoff`), up to a tenth of the age of the youngest
  active job and never more than `slowest` (30 s, or the user's
  `--seconds-between-status-checks` when given): a job that has run for an hour is not about
  to end in the next second, and checking it 30 s late costs under 1 %;
- around the time jobs are expected to end: once jobs of a rule have finished, a running job
  of that rule is expected to end after the rule's median run time, and a check is planned
  just after that moment;
- never more DescribeJobs per second than `calls_per_second` allows: one call reads up to
  100 jobs, so 10,000 active jobs (100 calls) are checked at most every
  100 / calls_per_second seconds.

The executor asks `due()` at every tick of Snakemake's status loop; a tick that is not due
costs no AWS call. It sets Snakemake's next sleep to `sleep_seconds()`, which is never longer
than `fastest`, so new submissions are noticed within that time.

Times are wall-clock seconds (`time.time()`), the clock of Batch's `startedAt`/`stoppedAt`.
"""

from __future__ import annotations

import math
import statistics
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

# Batch's DescribeJobs reads at most 100 jobs per call.
IDS_PER_CALL = 100
# A check planned for an expected end comes this long after it (Batch's times are rounded).
AFTER_EXPECTED_END = 0.5
# Run times kept per rule to estimate the next ends (the latest ones).
DURATIONS_KEPT = 50
ENDED = frozenset({"SUCCEEDED", "FAILED"})
# Snakemake's default --seconds-between-status-checks for remote executors, and the longest
# gap the cadence uses when the user left it at that.
SNAKEMAKE_DEFAULT_SECONDS = 10
SLOWEST = 30.0


def slowest_gap(seconds_between_status_checks: float | None) -> float:
    """The longest gap between checks: the user's --seconds-between-status-checks if they
    changed it from Snakemake's default, else `SLOWEST` (Snakemake cannot tell an explicit
    10 from its default, so 10 counts as not given)."""
    value = seconds_between_status_checks
    if value is None or value == SNAKEMAKE_DEFAULT_SECONDS or value <= 0:
        return SLOWEST
    return float(value)


@dataclass(frozen=True)
class Observed:
    """What a status check saw of one job, as plain data."""

    job_id: str
    rule: str
    status: str
    started: float | None = None  # seconds since the epoch (Batch's startedAt / 1000)
    stopped: float | None = None


def observed(job_id: str, rule: str, description: Mapping[str, Any]) -> Observed:
    """A DescribeJobs entry → `Observed` (Batch gives times in epoch milliseconds)."""

    def seconds(key: str) -> float | None:
        value = description.get(key)
        return value / 1000.0 if isinstance(value, int | float) and value > 0 else None

    return Observed(
        job_id=job_id,
        rule=rule,
        status=str(description.get("status", "")),
        started=seconds("startedAt"),
        stopped=seconds("stoppedAt"),
    )


@dataclass
class StatusCadence:
    """The next status check of a run; thread-safe (submissions and checks run in two threads)."""

    fastest: float = 1.0
    slowest: float = SLOWEST
    calls_per_second: float = 20.0
    backoff: float = 1.5
    _next_due: float = 0.0
    _interval: float = 0.0
    _last_status: dict[str, str] = field(default_factory=dict)
    _durations: dict[str, list[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def submitted(self, now: float) -> None:
        """Jobs were just submitted: look at them soon."""
        with self._lock:
            self._interval = self.fastest
            self._next_due = min(self._next_due, now + self.fastest) if self._next_due else (
                now + self.fastest
            )

    def due(self, now: float) -> bool:
        with self._lock:
            return now >= self._next_due

    def min_gap(self, active: int) -> float:
        """Seconds between checks so that their DescribeJobs stay within `calls_per_second`."""
        return math.ceil(max(active, 0) / IDS_PER_CALL) / self.calls_per_second

    def expected_ends(self, jobs: Iterable[Observed]) -> list[float]:
        """When running jobs should end, from their rule's median run time so far."""
        with self._lock:
            medians = {rule: statistics.median(d) for rule, d in self._durations.items() if d}
        return [
            job.started + medians[job.rule]
            for job in jobs
            if job.status not in ENDED and job.started is not None and job.rule in medians
        ]

    def checked(self, now: float, jobs: Iterable[Observed], submitted_at: float | None) -> None:
        """Plan the next check after one that saw `jobs` (every job it asked about).

        `submitted_at`: when the youngest still-active job was submitted (None if none is).
        """
        jobs = list(jobs)
        active = [job for job in jobs if job.status not in ENDED]
        with self._lock:
            changed = False
            for job in jobs:
                if self._last_status.get(job.job_id) != job.status:
                    changed = True
                if job.status in ENDED:
                    self._last_status.pop(job.job_id, None)
                    if job.status == "SUCCEEDED" and None not in (job.started, job.stopped):
                        kept = self._durations.setdefault(job.rule, [])
                        kept.append(max(0.0, job.stopped - job.started))
                        del kept[:-DURATIONS_KEPT]
                else:
                    self._last_status[job.job_id] = job.status
        ceiling = max(self.fastest, self.slowest)
        if submitted_at is not None:
            ceiling = min(ceiling, max(self.fastest, 0.1 * (now - submitted_at)))
        with self._lock:
            if changed:
                self._interval = self.fastest
            else:
                self._interval = min(ceiling, max(self.fastest, self._interval * self.backoff))
            interval = self._interval
        floor = self.min_gap(len(active))
        due = now + max(interval, floor)
        upcoming = [end + AFTER_EXPECTED_END for end in self.expected_ends(active) if end > now]
        if upcoming:
            due = min(due, max(now + floor, min(upcoming)))
        with self._lock:
            self._next_due = due

    def sleep_seconds(self, now: float) -> float:
        """How long Snakemake's status loop sleeps before its next tick."""
        with self._lock:
            return max(0.05, min(self.fastest, self._next_due - now))

    @property
    def next_due(self) -> float:
        with self._lock:
            return self._next_due


__all__ = ["IDS_PER_CALL", "Observed", "SLOWEST", "StatusCadence", "observed", "slowest_gap"]
