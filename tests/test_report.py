"""The run report's pure core: DescribeJobs answers → rows → tables, text, JSON, SVG, HTML."""

from __future__ import annotations

import json
import re

import pytest

from snakemake_executor_plugin_awsbatch_mpi.batch import runs
from snakemake_executor_plugin_awsbatch_mpi.report import (
    Prices,
    build_report,
    end_of_run_report,
    format_text,
    render_html,
    summary_line,
    to_dict,
)
from snakemake_executor_plugin_awsbatch_mpi.report.model import job_row, percentile
from snakemake_executor_plugin_awsbatch_mpi.report.text import rule_table
from snakemake_executor_plugin_awsbatch_mpi.report.timeline import (
    MAX_LANES,
    rule_colours,
    timeline_svg,
)

T0 = 1_700_000_000_000  # ms, as Batch gives them
RECLAIM = "Host EC2 (instance i-0abc) terminated."


def desc(job_id, rule, name=None, status="SUCCEEDED", created=0, attempts=(), **extra):
    """A DescribeJobs entry; attempts as (start s, stop s, reason, exit code) after T0."""
    tries = [
        {
            "startedAt": T0 + a * 1000,
            "stoppedAt": T0 + b * 1000,
            **({"statusReason": why} if why else {}),
            "container": {} if code is None else {"exitCode": code},
        }
        for a, b, why, code in attempts
    ]
    body = {
        "jobId": job_id,
        "jobName": name or rule,
        "jobQueue": "arn:aws:batch:eu-west-1:123456789012:job-queue/q-cpu",
        "status": status,
        "createdAt": T0 + created * 1000,
        "attempts": tries,
        "container": {
            "resourceRequirements": [
                {"type": "VCPU", "value": "2"},
                {"type": "MEMORY", "value": "4096"},
            ]
        },
        "tags": {"snakemake-rule": rule, "snakemake-run-id": "r1"},
    }
    if tries:
        body["startedAt"] = tries[-1]["startedAt"]
        body["stoppedAt"] = tries[-1]["stoppedAt"]
    body.update(extra)
    return body


def sample():
    """Two container jobs, a reclaimed-then-retried job, a failed job, an MPI job, a barrier."""
    mpi = desc("m", "md", attempts=[(10, 110, None, 0)], container={})
    mpi["nodeProperties"] = {
        "numNodes": 2,
        "nodeRangeProperties": [
            {
                "targetNodes": "0:",
                "container": {
                    "resourceRequirements": [
                        {"type": "VCPU", "value": "4"},
                        {"type": "MEMORY", "value": "8000"},
                        {"type": "GPU", "value": "1"},
                    ]
                },
            }
        ],
    }
    nodes = [
        {"jobId": "m#0", "status": "SUCCEEDED", "startedAt": T0 + 10_000,
         "stoppedAt": T0 + 110_000, "nodeDetails": {"nodeIndex": 0}},
        {"jobId": "m#1", "status": "SUCCEEDED", "startedAt": T0 + 12_000,
         "stoppedAt": T0 + 110_000, "nodeDetails": {"nodeIndex": 1}},
    ]  # fmt: skip
    jobs = [
        desc("a1", "align", "align-s1", created=0, attempts=[(5, 65, None, 0)]),
        desc("a2", "align", "align-s2", created=0, attempts=[(25, 55, None, 0)]),
        desc("r", "sort", created=1, attempts=[(2, 12, RECLAIM, None), (20, 80, None, 0)]),
        desc(
            "f", "call", "call-s1", status="FAILED", created=60, attempts=[(70, 100, None, 3)],
            statusReason="Essential container in task exited",
        ),  # fmt: skip
        mpi,
        desc("b", "align", tags={"snakemake-barrier": "true", "snakemake-rule": "align"}),
    ]
    return jobs, {"m": nodes}


def test_rows_read_batch_records():
    jobs, details = sample()
    report = build_report("r1", jobs, details)
    rows = {r.job_id: r for r in report.rows}
    assert set(rows) == {"a1", "a2", "r", "f", "m"}, "the barrier is not a job of the workflow"
    assert (rows["a1"].wildcards, rows["a1"].queue) == ("s1", "q-cpu")
    assert (rows["a1"].vcpus, rows["a1"].memory_mib, rows["a1"].gpus) == (2, 4096, 0)
    assert rows["a1"].queue_wait == 5 and rows["a1"].run_seconds == 60
    # the reclaimed attempt counts as run time (it was paid for) and as a Batch retry
    sort = rows["r"]
    assert sort.queue_wait == 1 and sort.run_seconds == 10 + 60
    assert (sort.retries, sort.reclaims) == (1, 1)
    assert sort.attempts[0].reason == RECLAIM and sort.attempts[0].exit_code is None
    call = rows["f"]
    assert call.failed and call.exit_code == 3 and "Essential container" in call.reason
    md = rows["m"]
    assert (md.nodes, md.vcpus, md.gpus, md.memory_mib) == (2, 4, 1, 8000)
    assert [n.index for n in md.node_rows] == [0, 1]
    assert md.vcpu_hours == pytest.approx(4 * 2 * 100 / 3600)
    assert md.gpu_hours == pytest.approx(1 * 2 * 100 / 3600)


def test_rule_tables_and_totals():
    jobs, details = sample()
    report = build_report("r1", jobs, details)
    stats = {s.rule: s for s in report.rules}
    assert [s.rule for s in report.rules] == ["align", "call", "md", "sort"]
    align = stats["align"]
    assert (align.jobs, align.failed, align.retried) == (2, 0, 0)
    assert (align.wait_p50, align.wait_p95) == (5, 25)
    assert (align.run_p50, align.run_max) == (30, 60)
    assert align.vcpu_hours == pytest.approx(2 * 90 / 3600)
    assert stats["sort"].retried == 1 and stats["call"].failed == 1
    t = report.totals
    assert (t.jobs, t.failed, t.retried, t.reclaims, t.unfinished) == (5, 1, 1, 1, 0)
    assert t.wall_seconds == 110  # first submission (T0) to the last stop
    assert t.job_seconds == sum(r.run_seconds for r in report.rows)
    assert t.vcpu_hours == pytest.approx(sum(s.vcpu_hours for s in report.rules))
    assert t.cost is None, "no price given, no cost"
    table = rule_table(report)
    assert table[0][-1] == "GPU-h" and table[-1][0] == "all"


def test_cost_only_from_given_prices():
    jobs, details = sample()
    report = build_report("r1", jobs, details, Prices(vcpu_hour=0.04, gpu_hour=1.2))
    t = report.totals
    assert t.cost == pytest.approx(t.vcpu_hours * 0.04 + t.gpu_hours * 1.2)
    text = format_text(report)
    assert "cost*" in text and "0.04 per vCPU-hour" in text and "estimate" in text
    assert "estimated cost" in summary_line(report)
    assert "cost" not in format_text(build_report("r1", jobs, details))


def test_text_names_retries_and_failures():
    jobs, details = sample()
    text = format_text(build_report("r1", jobs, details))
    assert f"sort (r): attempt 1: {RECLAIM}" in text
    assert "call s1 (f): Essential container in task exited, exit code 3" in text
    assert "Wall time 1m50s" in text


def test_array_parent_becomes_its_children():
    parent = desc("p", "count", "count-x3", arrayProperties={"size": 3})
    children = [
        desc(f"p:{i}", "count", "count-x3", attempts=[(i, i + 10, None, 0)],
             arrayProperties={"index": i}, tags={})
        for i in range(3)
    ]  # fmt: skip
    report = build_report("r1", [parent], {"p": children})
    assert [(r.job_id, r.rule, r.wildcards) for r in report.rows] == [
        ("p:0", "count", "[0]"),
        ("p:1", "count", "[1]"),
        ("p:2", "count", "[2]"),
    ]
    # without its children's records the parent stays one row
    assert [r.job_id for r in build_report("r1", [parent]).rows] == ["p"]


def test_unfinished_jobs_are_counted_and_drawn():
    waiting = desc("w", "late", status="RUNNABLE", created=5)
    report = build_report("r1", [waiting, *sample()[0][:1]])
    assert report.totals.unfinished == 1
    assert "not finished" in format_text(report)
    assert "late: RUNNABLE, not started" in timeline_svg(report)


def test_percentile_is_nearest_rank():
    assert percentile([], 0.5) is None
    assert percentile([3, 1, 2], 0.5) == 2
    assert percentile(list(range(1, 101)), 0.95) == 95


def test_json_has_every_job_and_the_totals():
    jobs, details = sample()
    doc = json.loads(json.dumps(to_dict(build_report("r1", jobs, details, Prices(0.1)))))
    assert len(doc["jobs"]) == 5 and doc["totals"]["jobs"] == 5
    sort = next(j for j in doc["jobs"] if j["job_id"] == "r")
    assert [a["spot_reclaim"] for a in sort["attempts"]] == [True, False]
    md = next(j for j in doc["jobs"] if j["job_id"] == "m")
    assert len(md["nodes_detail"]) == 2
    assert doc["totals"]["estimated_cost"] == pytest.approx(doc["totals"]["vcpu_hours"] * 0.1)


def test_timeline_one_lane_per_job_and_per_node():
    jobs, details = sample()
    report = build_report("r1", jobs, details)
    svg = timeline_svg(report)
    assert 'data-mode="jobs"' in svg
    # 4 single-node jobs + 2 nodes of the MPI job
    assert len(re.findall(r'class="label"', svg)) == 6
    assert "md · node 1" in svg
    colours = rule_colours([r.rule for r in report.rows])
    for colour in colours.values():
        assert f'fill="{colour}"' in svg
    assert 'class="run retried"' in svg and "▼" in svg, "the reclaimed attempt is marked"
    assert 'class="run failed"' in svg and "✕" in svg, "the failed job is marked"
    assert f"ended: {RECLAIM}" in svg
    assert 'class="wait"' in svg


def synthetic(n: int, rules: int = 6) -> list[dict]:
    jobs = []
    for i in range(n):
        start = (i % 200) * 3
        tries = [(start + 5, start + 65, None, 0)]
        if i % 97 == 0:
            tries = [(start + 5, start + 9, RECLAIM, None), *tries]
        status = "FAILED" if i % 151 == 0 else "SUCCEEDED"
        jobs.append(desc(f"j{i}", f"rule{i % rules}", f"rule{i % rules}-s{i}",
                         status=status, created=start, attempts=tries))  # fmt: skip
    return jobs


def test_timeline_aggregates_per_rule_when_rows_are_many():
    report = build_report("big", synthetic(2000))
    svg = timeline_svg(report)
    assert 'data-mode="rules"' in svg
    assert len(re.findall(r'class="label"', svg)) == 6, "one lane per rule"
    assert "rule0 (334 jobs)" in svg
    assert svg.count('class="tick-fail"') == sum(r.failed for r in report.rows)
    assert svg.count('class="tick-retry"') == sum(r.retries for r in report.rows)
    assert len(svg) < 1_500_000
    small = build_report("small", synthetic(MAX_LANES))
    assert 'data-mode="jobs"' in timeline_svg(small)


def test_html_is_self_contained():
    jobs, details = sample()
    page = render_html(build_report("r1", jobs, details, Prices(0.04)))
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page
    # the SVG namespace is the only URL: nothing is fetched when the file is opened
    assert set(re.findall(r"https?://[^\s\"'<>]+", page)) == {"http://www.w3.org/2000/svg"}
    assert "<svg" in page and "Per rule" in page and "All 5 jobs" in page
    assert RECLAIM in page and "Essential container in task exited" in page


class FakeBatch:
    def __init__(self, known):
        self.known = known
        self.calls = []

    def describe_jobs(self, jobs):
        from snakemake_executor_plugin_awsbatch_mpi.batch.model import validate_request

        assert validate_request("DescribeJobs", {"jobs": list(jobs)}) == []
        self.calls.append(list(jobs))
        return {"jobs": [self.known[j] for j in jobs if j in self.known]}


def test_run_details_describes_array_children_and_nodes_in_chunks():
    parent = {"jobId": "p", "arrayProperties": {"size": 150}}
    mpi = {"jobId": "m", "nodeProperties": {"numNodes": 3}}
    single = {"jobId": "s", "nodeProperties": {"numNodes": 1}}
    known = {f"p:{i}": {"jobId": f"p:{i}"} for i in range(150)}
    known.update({f"m#{i}": {"jobId": f"m#{i}"} for i in range(3)})
    batch = FakeBatch(known)
    found = runs.run_details(batch, [parent, mpi, single])
    assert [len(c) for c in batch.calls] == [100, 53], "DescribeJobs takes at most 100 ids"
    assert [d["jobId"] for d in found["m"]] == ["m#0", "m#1", "m#2"]
    assert len(found["p"]) == 150 and "s" not in found
    assert runs.run_details(FakeBatch({}), [single]) == {}


def _executor(describe_jobs):
    from types import SimpleNamespace

    from snakemake_executor_plugin_awsbatch_mpi.executor import Executor

    logged = {"info": [], "warning": []}
    client = SimpleNamespace(describe_jobs=describe_jobs)
    executor = SimpleNamespace(
        run_id="r1",
        batch=SimpleNamespace(client=client),
        _ended={},
        logger=SimpleNamespace(info=logged["info"].append, warning=logged["warning"].append),
    )
    return (lambda: Executor._write_report(executor)), logged


def test_end_of_run_report_is_written_and_logged(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    jobs, _ = sample()
    for job in jobs:
        runs.record_submission("r1", job["jobId"], job["tags"]["snakemake-rule"])
    known = {j["jobId"]: j for j in jobs}
    write, logged = _executor(lambda jobs: {"jobs": [known[j] for j in jobs if j in known]})
    write()
    [line] = logged["info"]
    assert line.startswith("Run r1: 5 job(s), 1 failed, 1 retried by Batch")
    assert line.endswith("Report: .snakemake/awsbatch-mpi/report-r1.html")
    assert (tmp_path / ".snakemake/awsbatch-mpi/report-r1.html").read_text().startswith("<!DOC")
    assert logged["warning"] == []


def test_end_of_run_report_problem_is_only_a_warning(tmp_path, monkeypatch):
    from botocore.exceptions import ClientError

    monkeypatch.chdir(tmp_path)
    runs.record_submission("r1", "j1", "a")

    def denied(jobs):
        raise ClientError({"Error": {"Code": "AccessDeniedException"}}, "DescribeJobs")

    write, logged = _executor(denied)
    write()  # does not raise
    [warning] = logged["warning"]
    assert "report of run r1 could not be written" in warning and "AccessDenied" in warning
    assert "awsbatch-mpi report --run r1" in warning and logged["info"] == []


def test_no_report_for_a_run_that_submitted_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write, logged = _executor(lambda jobs: pytest.fail("nothing to describe"))
    write()
    assert logged == {"info": [], "warning": []}
    assert not (tmp_path / ".snakemake").exists()


def test_job_that_never_started_is_drawn_until_batch_gave_up():
    dead = desc("d", "after", status="FAILED", created=5, statusReason="Dependent Job failed")
    dead["stoppedAt"] = T0 + 40_000
    report = build_report("r1", [dead, *sample()[0][:1]])
    row = next(r for r in report.rows if r.job_id == "d")
    assert row.queue_wait is None and row.run_seconds == 0 and row.failed
    svg = timeline_svg(report)
    assert "after: FAILED, not started (Dependent Job failed)" in svg
    assert 'class="mark fail"' in svg


def test_node_hours_count_every_node():
    jobs, details = sample()
    doc = to_dict(build_report("r1", jobs, details))
    md = next(j for j in doc["jobs"] if j["job_id"] == "m")
    assert md["node_hours"] == pytest.approx(2 * 100 / 3600)
    assert doc["totals"]["node_hours"] == pytest.approx(sum(j["node_hours"] for j in doc["jobs"]))


def test_cli_refuses_a_negative_price_before_calling_aws(capsys, monkeypatch):
    from snakemake_executor_plugin_awsbatch_mpi.cli import main

    monkeypatch.setattr("boto3.client", lambda *a, **k: pytest.fail("AWS was called"))
    assert main(["report", "--run", "r1", "--price-per-gpu-hour", "-2"]) == 2
    assert "--price-per-gpu-hour is -2.0; give a price of 0 or more." in capsys.readouterr().err


def test_terminal_lists_stay_short_for_large_runs():
    report = build_report("big", synthetic(2000))
    text = format_text(report)
    retried = sum(r.retries for r in report.rows)
    assert retried > 20 and f"... and {retried - 20} more (all in --html and --json)." in text
    assert len(text.splitlines()) < 70


def test_mpi_sizes_are_what_each_node_got_not_the_definitions_defaults():
    """A 2-vCPU node must not show as the definition's 1 vCPU (halving the vCPU-hours)."""
    from snakemake_executor_plugin_awsbatch_mpi.report.model import job_row

    def sized(vcpus: str, memory: str) -> dict:
        return {"resourceRequirements": [{"type": "VCPU", "value": vcpus},
                                         {"type": "MEMORY", "value": memory}]}

    parent = desc("m", "md", attempts=[(0, 3600, None, 0)], container=sized("1", "2048"))
    parent["nodeProperties"] = {
        "numNodes": 3, "mainNode": 0,
        "nodeRangeProperties": [{"targetNodes": "0:", "container": sized("2", "4000")}],
    }  # fmt: skip
    # The parent's node ranges (with nodeOverrides, as Batch shows them) win over the
    # definition's container; each node's own description wins over both.
    assert (job_row(parent).vcpus, job_row(parent).memory_mib) == (2, 4000)
    nodes = [
        {"jobId": f"m#{i}", "status": "SUCCEEDED", "nodeDetails": {"nodeIndex": i},
         "container": sized(v, "4000")}
        for i, v in enumerate(["2", "2", "4"])
    ]  # fmt: skip
    row = job_row(parent, nodes=nodes)
    assert (row.vcpus, row.memory_mib) == (2, 4000)  # the main node's
    assert [n.vcpus for n in row.node_rows] == [2, 2, 4]
    assert row.vcpu_hours == pytest.approx(2 + 2 + 4)  # one hour, every node's own vCPUs
    # Nodes described without sizes: the job's size times the node count, as before.
    bare = [{k: v for k, v in n.items() if k != "container"} for n in nodes]
    assert job_row(parent, nodes=bare).vcpu_hours == pytest.approx(2 * 3)


def test_array_children_are_told_apart_by_their_id_when_batch_omits_the_index():
    parent = {"jobId": "p", "jobName": "align-x-x2", "tags": {"snakemake-rule": "align"}}
    child = {"jobId": "p:1", "jobName": "align-x-x2", "status": "SUCCEEDED"}
    assert job_row(child, parent=parent).wildcards == "[1]"
    indexed = {**child, "arrayProperties": {"index": 0}}
    assert job_row(indexed, parent=parent).wildcards == "[0]"


def test_the_end_of_run_report_reuses_known_descriptions(tmp_path, monkeypatch):
    """Descriptions the status checks already read are not asked for again."""
    monkeypatch.chdir(tmp_path)
    runs.record_submission("run1", "p", "align")
    child = {"jobId": "p:0", "status": "SUCCEEDED", "createdAt": 1000, "startedAt": 2000,
             "stoppedAt": 3000, "arrayProperties": {"index": 0}}
    asked: list[list[str]] = []

    class Batch:
        def describe_jobs(self, jobs):
            asked.append(list(jobs))
            return {"jobs": [{"jobId": "p", "jobName": "align-x2", "status": "SUCCEEDED",
                              "tags": {"snakemake-run-id": "run1", "snakemake-rule": "align"},
                              "arrayProperties": {"size": 1}, "createdAt": 1000}]}

    line = end_of_run_report(Batch(), "run1", tmp_path, known={"p:0": child})
    assert asked == [["p"]]  # the parent only: its child was known
    assert line and "1 job(s)" in line


def test_a_rules_colour_comes_from_its_name_alone():
    """Issue 21 item 7: the same rule has the same colour in every report."""
    from snakemake_executor_plugin_awsbatch_mpi.report.timeline import PALETTE, preferred_colour

    example = ["split", "count_kmers", "embed", "report", "gc_mpi"]
    together = rule_colours(example)
    assert len(set(together.values())) == len(example)
    for rule in example:  # each rule alone, or with any other set, keeps its colour
        assert rule_colours([rule])[rule] == together[rule] == PALETTE[preferred_colour(rule)]
    assert rule_colours(["report", "gc_mpi"]) == {k: together[k] for k in ("gc_mpi", "report")}
    assert preferred_colour("align") == preferred_colour("align")
    # Two rules whose names hash to the same colour still differ within one report.
    a, b = next(
        (x, y) for x in map(str, range(100)) for y in map(str, range(100))
        if x < y and preferred_colour(x) == preferred_colour(y)
    )
    pair = rule_colours([a, b])
    assert pair[a] == PALETTE[preferred_colour(a)] and pair[b] != pair[a]
    many = rule_colours([f"r{i}" for i in range(25)])  # more rules than colours: no failure
    assert len(many) == 25


def test_job_resubmitted_to_the_fallback_queue_is_marked_and_not_counted_as_failed():
    """A Spot-reclaimed job that the executor sent to the on-demand queue: one job, marked."""
    lost = desc("s1", "sort", status="FAILED", created=0,
                attempts=[(2, 10, RECLAIM, None), (12, 20, RECLAIM, None)],
                statusReason=RECLAIM)
    again = desc("s2", "sort", created=21, attempts=[(25, 40, None, 0)],
                 jobQueue="arn:aws:batch:eu-west-1:123456789012:job-queue/q-ondemand",
                 tags={"snakemake-rule": "sort", "snakemake-run-id": "r1",
                       "snakemake-fallback-of": "s1"})
    report = build_report("r1", [lost, again])
    rows = {r.job_id: r for r in report.rows}
    assert rows["s1"].replaced_by == "s2" and rows["s2"].fallback_of == "s1"
    assert report.totals.failed == 0 and report.totals.fallbacks == 1
    assert "1 resubmitted to the on-demand fallback queue" in summary_line(report)
    line = "sort: s1 (Spot reclaimed) -> s2 on queue 'q-ondemand', SUCCEEDED"
    assert line in format_text(report)
    assert line.replace("'", "&#x27;").replace(">", "&gt;") in render_html(report)
    jobs = {j["job_id"]: j for j in to_dict(report)["jobs"]}
    assert jobs["s2"]["fallback_of"] == "s1" and jobs["s1"]["replaced_by"] == "s2"
    assert to_dict(report)["totals"]["fallbacks"] == 1
