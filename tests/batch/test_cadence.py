"""The status cadence: checks soon after submissions, around expected ends, slower for long
jobs, and within the DescribeJobs budget."""

from __future__ import annotations

import pytest

from snakemake_executor_plugin_awsbatch_mpi.batch.cadence import (
    SLOWEST,
    Observed,
    StatusCadence,
    observed,
    slowest_gap,
)


def jobs(status: str, n: int, rule: str = "r", started: float | None = None, stopped=None):
    return [Observed(f"j{i}", rule, status, started, stopped) for i in range(n)]


def test_soon_after_a_submission_then_slower_while_nothing_changes():
    cadence = StatusCadence(fastest=1.0, slowest=30.0, calls_per_second=10)
    cadence.submitted(100.0)
    assert not cadence.due(100.5) and cadence.due(101.0)
    running = jobs("RUNNING", 3)
    cadence.checked(101.0, running, submitted_at=100.0)  # first look: states are news
    assert cadence.next_due == pytest.approx(102.0)
    gaps, now = [], 102.0
    for _ in range(12):
        cadence.checked(now, running, submitted_at=-1000.0)  # submitted long ago
        gaps.append(cadence.next_due - now)
        now = cadence.next_due
    assert gaps[0] == pytest.approx(1.5) and gaps[1] == pytest.approx(2.25)
    assert gaps == sorted(gaps) and gaps[-1] == pytest.approx(30.0)  # capped at slowest
    # A change (a job ended) brings the next check close again.
    cadence.checked(now, jobs("SUCCEEDED", 1) + running[1:], submitted_at=-1000.0)
    assert cadence.next_due - now == pytest.approx(1.0)
    # So does a new submission, even when the next planned check is far.
    for _ in range(10):
        cadence.checked(now, running[1:], submitted_at=-1000.0)
    assert cadence.next_due - now > 10
    cadence.submitted(now)
    assert cadence.next_due == pytest.approx(now + 1.0)


def test_young_jobs_are_checked_more_often_than_old_ones():
    cadence = StatusCadence(fastest=1.0, slowest=60.0, calls_per_second=10)
    running = jobs("RUNNING", 2)
    cadence.checked(0.0, running, submitted_at=0.0)
    now = 0.0
    for _ in range(20):
        now += 1.0
        cadence.checked(now, running, submitted_at=now - 20.0)
    assert cadence.next_due - now == pytest.approx(2.0)  # a tenth of 20 s of age


def test_a_check_is_planned_just_after_a_rule_s_expected_end():
    cadence = StatusCadence(fastest=1.0, slowest=60.0, calls_per_second=10)
    # Three jobs of rule "align" took 400 s each.
    done = [Observed(f"d{i}", "align", "SUCCEEDED", 0.0, 400.0) for i in range(3)]
    cadence.checked(100.0, done, submitted_at=None)
    running = [Observed("r1", "align", "RUNNING", 110.0)]  # expected to end at 510
    cadence.checked(101.0, running, submitted_at=None)  # news: r1 is new
    now, gaps = 101.0, []
    while cadence.next_due < 510:
        gaps.append(cadence.next_due - now)
        now = cadence.next_due
        cadence.checked(now, running, submitted_at=None)
    assert max(gaps) == pytest.approx(60.0)  # long waits while the job is mid-way
    assert cadence.next_due == pytest.approx(510.5)  # then just after its expected end
    assert cadence.expected_ends(running) == [510.0]
    assert cadence.expected_ends([Observed("x", "other", "RUNNING", 110.0)]) == []


def test_never_more_describe_calls_per_second_than_the_budget():
    cadence = StatusCadence(fastest=1.0, calls_per_second=10)
    many = jobs("RUNNING", 10_000)  # 100 DescribeJobs per check
    assert cadence.min_gap(10_000) == pytest.approx(10.0)
    cadence.checked(0.0, many, submitted_at=0.0)  # everything is news
    assert cadence.next_due >= 10.0
    # Even an expected end does not bring the check before the budget allows.
    cadence.checked(0.0, [Observed("d", "r", "SUCCEEDED", 0.0, 1.0)], submitted_at=None)
    cadence.checked(1.0, [Observed(f"j{i}", "r", "RUNNING", 0.5) for i in range(10_000)], None)
    assert cadence.next_due >= 11.0


def test_sleep_is_short_enough_to_notice_submissions():
    cadence = StatusCadence(fastest=1.0)
    cadence.checked(0.0, jobs("RUNNING", 5), submitted_at=0.0)
    for _ in range(10):
        cadence.checked(cadence.next_due, jobs("RUNNING", 5), submitted_at=-1000.0)
    assert cadence.next_due - 0.0 > 5
    assert cadence.sleep_seconds(0.0) == 1.0
    assert cadence.sleep_seconds(cadence.next_due - 0.2) == pytest.approx(0.2)
    assert cadence.sleep_seconds(cadence.next_due + 5) == 0.05


def test_observed_reads_batch_milliseconds():
    seen = observed("id", "r", {"status": "SUCCEEDED", "startedAt": 2500, "stoppedAt": 4000})
    assert seen == Observed("id", "r", "SUCCEEDED", 2.5, 4.0)
    assert observed("id", "r", {"status": "RUNNABLE"}).started is None


def test_the_users_seconds_between_status_checks_is_the_longest_gap():
    assert slowest_gap(None) == slowest_gap(10) == SLOWEST == 30.0  # Snakemake's default
    assert slowest_gap(15) == 15.0 and slowest_gap(1) == 1.0
    cadence = StatusCadence(fastest=0.5, slowest=slowest_gap(2))
    cadence.checked(0.0, jobs("RUNNING", 1), submitted_at=-1000.0)
    gaps, now = [], 0.0
    for _ in range(10):
        gaps.append(cadence.next_due - now)
        now = cadence.next_due
        cadence.checked(now, jobs("RUNNING", 1), submitted_at=-1000.0)
    assert gaps[0] == pytest.approx(0.5) and max(gaps) == pytest.approx(2.0)
