"""The rule's own `log:` of a failed job, read back from storage (issue 19 §4)."""

from __future__ import annotations

import subprocess

import pytest

from .test_executor import snakemake_cmd, write_workflow

pytestmark = pytest.mark.integration


def test_failed_rule_shows_its_own_log_from_storage_first(emulated_env, tmp_path):
    work = write_workflow(tmp_path / "rulelog", """
        rule align:
            output: "aligned.bam"
            log: "logs/align.log"
            shell:
                "(echo 'starting align'; "
                "echo '[E::bwa_idx_load] fail to locate the index files'; exit 4) > {log} 2>&1"
    """)
    run = subprocess.run(
        snakemake_cmd(work, "--show-failed-logs"), cwd=work, capture_output=True, text=True,
        timeout=240,
    )
    out = run.stdout + run.stderr
    assert run.returncode != 0
    url = "s3://snakemake-local/rulelog/logs/align.log"
    header = f"The rule's own log {url} (all of it):"
    assert header in out, out[-4000:]
    block = out[out.index(header):]
    assert block.splitlines()[1:3] == [
        "    starting align", "    [E::bwa_idx_load] fail to locate the index files"
    ]
    # First in the error: before Batch's reasons and the job's own (CloudWatch) log.
    assert out.index(header) < out.index("AWS Batch reported for rule 'align'")
    assert out.index(header) < out.index("Last lines of the log:")
    saved = list((work / ".snakemake/awsbatch-mpi/logs").glob("align-*-rule-align.log"))
    assert len(saved) == 1 and "fail to locate the index files" in saved[0].read_text()


def test_empty_rule_log_is_said(emulated_env, tmp_path):
    """Snakemake uploads a rule's log even when the rule wrote nothing to it."""
    work = write_workflow(tmp_path / "emptylog", """
        rule a:
            output: "a.txt"
            log: "logs/a.log"
            shell: "exit 1"
    """)
    run = subprocess.run(snakemake_cmd(work), cwd=work, capture_output=True, text=True,
                         timeout=240)
    out = run.stdout + run.stderr
    assert run.returncode != 0
    assert "The rule's log s3://snakemake-local/emptylog/logs/a.log is empty." in out, out[-4000:]
