from collections import Counter

from snakemake_executor_plugin_awsbatch_mpi.batch.runs import (
    format_summary,
    has_failed,
    record_submission,
    recorded_job_ids,
    summarize,
)


def job(rule, status, **extra):
    return {
        "jobId": f"{rule}-{status}",
        "status": status,
        "tags": {"snakemake-rule": rule},
        **extra,
    }


def test_summary_counts_rules_states_and_array_children():
    table = summarize(
        [
            job("a", "SUCCEEDED"),
            job("b", "FAILED"),
            job("b", "RUNNING"),
            job("b", "SUCCEEDED", tags={"snakemake-rule": "b", "snakemake-barrier": "true"}),
            job(
                "sq",
                "RUNNING",
                arrayProperties={
                    "size": 5,
                    "statusSummary": {"SUCCEEDED": 3, "RUNNING": 2, "FAILED": 0},
                },
            ),
        ]
    )
    assert table == {
        "a": Counter(SUCCEEDED=1),
        "b": Counter(FAILED=1, RUNNING=1),
        "sq": Counter(SUCCEEDED=3, RUNNING=2),
    }
    assert has_failed(table)
    text = format_summary("r1", table)
    assert text.splitlines()[1].split() == ["rule", "RUNNING", "SUCCEEDED", "FAILED", "total"]
    assert text.splitlines()[-1].split() == ["all", "3", "4", "1", "8"]


def test_run_record(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert recorded_job_ids("r") is None
    record_submission("r", "j1", "a")
    record_submission("r", "j2", "b")
    assert recorded_job_ids("r") == ["j1", "j2"]
