"""`awsbatch-mpi demo` end to end: the example workflow on the emulation, outputs checked."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .test_example_workflow import config, expected, expected_report  # noqa: F401

# The example's gc_mpi rule compiles and runs an MPI program on the host.
pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("usable_mpi")]


def run_demo(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return subprocess.run(
        [sys.executable, "-m", "snakemake_executor_plugin_awsbatch_mpi.cli", "demo",
         "--workdir", str(workdir), *args],
        capture_output=True, text=True, timeout=600, env=env,
    )


def check_mpi_table(path: Path, expected: dict) -> None:  # noqa: F811
    """6 MPI ranks on 3 distinct nodes counted every base of every sample."""
    lines = [line.split("\t") for line in path.read_text().splitlines()]
    assert lines[0] == ["rank", "node", "host", "A", "C", "G", "T", "other"]
    ranks, total = lines[1:-1], lines[-1]
    assert [int(r[0]) for r in ranks] == list(range(6))
    assert {r[1] for r in ranks} == {"0", "1", "2"}
    assert [sum(1 for r in ranks if r[1] == n) for n in "012"] == [2, 2, 2]
    seqs = "".join(s for sample in expected.values() for _, s in sample["records"])
    want = [seqs.count(b) for b in "ACGT"]
    want.append(len(seqs) - sum(want))
    assert [int(x) for x in total[3:]] == want
    assert [sum(int(r[3 + i]) for r in ranks) for i in range(5)] == want


def test_demo_runs_the_example_on_the_emulation(tmp_path, expected):  # noqa: F811
    work = tmp_path / "demo"
    first = run_demo(work)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-4000:]
    out = first.stdout
    # summary table: every Batch job, sized from its rule
    rows = [line.split() for line in out.splitlines() if "SUCCEEDED" in line]
    by_rule: dict[str, list[list[str]]] = {}
    for row in rows:
        by_rule.setdefault(row[0], []).append(row)
    assert {r: len(v) for r, v in by_rule.items()} == {
        "split": 1, "count_kmers": 3, "embed": 3, "report": 1, "gc_mpi": 1
    }
    # columns: rule, id, status, duration, "s", nodes, vCPU, MiB, GPU
    assert all(row[5:] == ["1", "2", "977", "0"] for row in by_rule["count_kmers"])
    assert all(row[5:] == ["1", "1", "1954", "1"] for row in by_rule["embed"])
    assert by_rule["gc_mpi"][0][5:] == ["3", "2", "977", "0"]  # 3 nodes x 2 vCPU
    assert "s3://snakemake-local/demo/results/" in out
    # the run's HTML report, by its path (issue 21 item 2)
    [report_line] = [line for line in out.splitlines() if "HTML report of the run: " in line]
    assert Path(report_line.split("HTML report of the run: ")[1]).is_file()
    assert "WorkflowError" not in out
    # every job ran once: no warning about a Batch retry that never happened
    assert "Batch retries it" not in (work / "demo.log").read_text()
    # the results, by content
    assert (work / "results" / "report.tsv").read_text() == expected_report(expected)
    check_mpi_table(work / "results" / "mpi" / "base_counts.tsv", expected)
    # a second run has nothing to do
    second = run_demo(work)
    assert second.returncode == 0
    assert "Nothing needed to be done" in second.stdout
    assert "--fresh" in second.stdout


def test_a_failed_demo_shows_the_rules_own_log_and_the_report(tmp_path):
    """The MPI rule fails to compile (as without mpi.h): the terminal shows why, whole."""
    import shutil

    from snakemake_executor_plugin_awsbatch_mpi.demo import example_source

    work = tmp_path / "demo"
    shutil.copytree(example_source(), work, ignore=shutil.ignore_patterns(".snakemake"))
    snakefile = work / "Snakefile"
    text = snakefile.read_text()
    assert "scripts/mpi_gc.c &&" in text
    snakefile.write_text(text.replace("scripts/mpi_gc.c &&", "scripts/no_such_source.c &&"))
    run = run_demo(work)
    out = run.stdout
    assert run.returncode == 1, out[-4000:] + run.stderr[-2000:]
    lines = out.splitlines()
    start = lines.index("[demo] Error in rule gc_mpi:")
    assert lines[start + 1].startswith("[demo]   The command of rule 'gc_mpi' exited with code")
    assert lines[start + 2] == (
        "[demo]   The rule's own log s3://snakemake-local/demo/logs/gc_mpi.log (all of it):"
    )
    assert "no_such_source.c: No such file or directory" in lines[start + 3]
    assert "HTML report of the run: " in out
    assert "WorkflowError" not in out  # no fragments
    assert out.count("Error in rule gc_mpi:") == 1  # the summary's, not the job log's lines
