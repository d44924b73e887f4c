"""The run report of a real run on the emulation, and its HTML in real headless Chromium.

One Snakemake run (the machine is slow) with two container jobs of one rule, a multi-node
MPI job, a failing job and a job whose first attempt is lost to a simulated Spot reclaim and
retried by Batch. The expected numbers are recomputed here from Batch's own records.
"""

from __future__ import annotations

import json
import os
import subprocess

import boto3
import pytest

from snakemake_executor_plugin_awsbatch_mpi.cli import main
from snakemake_executor_plugin_awsbatch_mpi.local.faults import reclaim_first_attempt
from snakemake_executor_plugin_awsbatch_mpi.report import report_path
from snakemake_executor_plugin_awsbatch_mpi.report.timeline import rule_colours

from .. import _browser
from .conftest import jobs_with_tag, with_array_children
from .test_executor import snakemake_cmd, write_workflow

pytestmark = [
    pytest.mark.integration,
    pytest.mark.usefixtures("usable_mpi"),
]

SNAKEFILE = """
    rule all:
        input: expand("a-{s}.txt", s=["x", "y"]), "r.txt", "m.txt", "f.txt"
    rule align:
        output: "a-{s}.txt"
        resources: mem_mb=300
        shell: "echo {wildcards.s} > {output}"
    rule resorted:
        output: "r.txt"
        shell: "echo ok > {output}"
    rule md:
        output: "m.txt"
        resources: mpi="mpirun", tasks=2, nodes=2
        shell: "{resources.mpi} -n {resources.tasks} hostname > {output}"
    rule broken:
        output: "f.txt"
        shell: "exit 3"
"""


@pytest.fixture(scope="module")
def finished_run(emulation, tmp_path_factory):
    """(workdir, run id, Snakemake's stderr) of one run; the environment as `emulated_env`."""
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("AWS_") or name.startswith("SNAKEMAKE_AWSBATCH_MPI_"):
                patch.delenv(name)
        for name, value in emulation.client_env().items():
            patch.setenv(name, value)
        work = write_workflow(tmp_path_factory.mktemp("report") / "reported", SNAKEFILE)
        # --jobs 10: all five ready jobs are selected at once, so align's two go as one
        # array job (with 4, which jobs come first is Snakemake's choice).
        cmd = snakemake_cmd(work, "--awsbatch-mpi-multinode-job-queue", "local-mpi",
                            "--keep-going", "--jobs", "10")  # fmt: skip
        with reclaim_first_attempt("resorted"):
            run = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=300)
        assert run.returncode != 0, "rule broken fails, so the run fails"
        [record] = (work / ".snakemake/awsbatch-mpi/runs").glob("*.tsv")
        patch.chdir(work)
        yield work, record.stem, run.stderr, boto3.client("batch")


def test_report_rows_sums_and_reasons(finished_run, tmp_path, capsys):
    work, run_id, stderr, batch = finished_run
    # the executor wrote the report at the end of the run and said so in one line
    html = work / report_path(run_id)
    assert html.is_file(), stderr[-3000:]
    [line] = [x for x in stderr.splitlines() if f"Report: {report_path(run_id)}" in x]
    assert f"Run {run_id}: 5 job(s), 1 failed, 1 retried by Batch (1 Spot reclaim(s))" in line

    out = tmp_path / "report.json"
    code = main(["report", "--run", run_id, "--json", str(out), "--html", str(tmp_path / "r.html"),
                 "--price-per-vcpu-hour", "0.04"])  # fmt: skip
    text = capsys.readouterr().out
    assert code == 0
    doc = json.loads(out.read_text())
    # Rule align's two jobs went as one array job (the default): the report has a row per child.
    listed = jobs_with_tag(batch, "snakemake-run-id", run_id, queues=None)
    raw = {j["jobId"]: j for j in with_array_children(batch, listed)}
    rows = {j["job_id"]: j for j in doc["jobs"]}
    assert set(rows) == set(raw)
    by_rule = {}
    for row in rows.values():
        by_rule.setdefault(row["rule"], []).append(row)
    assert sorted(r["wildcards"] for r in by_rule["align"]) == ["[0]", "[1]"]  # array index
    assert {r["memory_mib"] for r in by_rule["align"]} == {287}  # 300 MB

    [sort] = by_rule["resorted"]
    assert [a["spot_reclaim"] for a in sort["attempts"]] == [True, False]
    assert sort["attempts"][0]["reason"].startswith("Host EC2")
    assert sort["status"] == "SUCCEEDED"
    [broken] = by_rule["broken"]
    assert broken["status"] == "FAILED" and broken["exit_code"] == 1
    [md] = by_rule["md"]
    assert md["nodes"] == 2 and [n["index"] for n in md["nodes_detail"]] == [0, 1]

    for job_id, row in rows.items():
        attempts = raw[job_id]["attempts"]
        seconds = sum((a["stoppedAt"] - a["startedAt"]) / 1000 for a in attempts)
        assert row["run_seconds"] == pytest.approx(seconds, abs=1e-3)
        assert row["queue_wait_seconds"] == pytest.approx(
            (attempts[0]["startedAt"] - raw[job_id]["createdAt"]) / 1000, abs=1e-3
        )
        assert row["vcpu_hours"] == pytest.approx(
            row["vcpus"] * row["nodes"] * seconds / 3600, rel=1e-6
        )
    totals = doc["totals"]
    assert (totals["jobs"], totals["failed"], totals["retried"]) == (5, 1, 1)
    assert totals["job_seconds"] == pytest.approx(sum(r["run_seconds"] for r in rows.values()))
    assert totals["vcpu_hours"] == pytest.approx(sum(r["vcpu_hours"] for r in rows.values()))
    assert totals["estimated_cost"] == pytest.approx(totals["vcpu_hours"] * 0.04)
    first = min(j["createdAt"] for j in raw.values()) / 1000
    last = max(j["stoppedAt"] for j in raw.values()) / 1000
    assert totals["wall_seconds"] == pytest.approx(last - first, abs=1e-3)

    table = {line.split()[0]: line.split() for line in text.splitlines()[1:7]}
    assert table["rule"][:4] == ["rule", "jobs", "failed", "retried"]
    assert table["align"][1:4] == ["2", "0", "0"]
    assert table["resorted"][1:4] == ["1", "0", "1"]
    assert table["broken"][1:4] == ["1", "1", "0"]
    assert table["all"][1:4] == ["5", "1", "1"]
    assert "attempt 1: Host EC2" in text
    assert "HTML report:" in text and (tmp_path / "r.html").is_file()


def test_report_of_an_unknown_run_says_where_it_looked(finished_run, capsys):
    assert main(["report", "--run", "no-such-run"]) == 2
    assert "No jobs of run no-such-run found" in capsys.readouterr().err


@pytest.mark.skipif(not _browser.CHROMIUM, reason=_browser.MISSING)
def test_html_report_in_headless_chromium(finished_run, tmp_path):
    work, run_id, _, _ = finished_run
    png = _browser.screenshot(work / report_path(run_id), tmp_path / "report.png")
    counts = _browser.pixels(png)
    assert len(counts) > 50, "a blank page"
    # every rule's colour is on screen: the timeline (not only the legend) was drawn
    for rule, colour in rule_colours(["align", "resorted", "md", "broken"]).items():
        assert counts[_browser.rgb(colour)] > 300, f"rule {rule}'s bars are missing"
