"""A new user's first run, through Snakemake and the plugin on the emulation (issue 21).

A resource one edit away from one the plugin reads (item 3) and a run without
--container-image (item 6) are each said once, before the first SubmitJob; the run goes on.
"""

from __future__ import annotations

import subprocess

import boto3
import pytest

from .conftest import jobs_with_tag
from .test_executor import snakemake_cmd, write_workflow

pytestmark = pytest.mark.integration

TYPO = (
    "Rule 'typo': resource mem_mbb (did you mean mem_mb?) is not read by Snakemake or this "
    "plugin, so it changes nothing in the Batch job. Fix the name, or ignore this warning if "
    "mem_mbb is a custom resource of your own."
)


def test_typo_and_snakemakes_image_are_each_said_once_before_submission(emulated_env,
                                                                        tmp_path):
    work = write_workflow(tmp_path / "firsthour", """
        rule all:
            input: expand("out-{i}.txt", i=[1, 2])
        rule typo:
            output: "out-{i}.txt"
            resources: mem_mbb=1000
            shell: "echo {resources.mem_mbb} > {output}"
    """)
    # One Batch job per Snakemake job, so that each one's request can be read back below.
    run = subprocess.run(snakemake_cmd(work, "--awsbatch-mpi-array-jobs", "none"), cwd=work,
                         capture_output=True, text=True, timeout=300)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-3000:]
    assert out.count(TYPO) == 1, out[-3000:]  # one warning per rule, not per job
    image = (
        "Jobs of rule typo would run in snakemake/snakemake:v9.27.1, Snakemake's own image "
        "(the default without --container-image), which has neither the S3 storage plugin nor "
        "this plugin nor its MPI node agent, so on AWS Batch they would fail as soon as they "
        "start: build and push this plugin's image as containers/README.md describes and pass "
        "it with --container-image <uri> (or name an image per rule with resources: "
        "awsbatch_image=...)."
    )
    assert out.count(image) == 1, out[-3000:]
    # Both before the first job was scheduled (and submitted).
    first_job = out.index("rule typo:")
    assert out.index(TYPO) < first_job and out.index(image) < first_job
    # Not refused: custom resources are allowed, the job got the default memory.
    jobs = jobs_with_tag(boto3.client("batch"), "snakemake-workflow", "firsthour")
    assert len(jobs) == 2 and {j["status"] for j in jobs} == {"SUCCEEDED"}
    for job in jobs:
        reqs = {r["type"]: r["value"] for r in job["container"]["resourceRequirements"]}
        assert reqs["MEMORY"] == "2048"
