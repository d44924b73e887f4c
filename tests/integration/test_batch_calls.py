"""How many Batch calls a small run makes besides status polling (issue 12 §2).

The preflight and the planner read the same queues; through the one `BatchClient` of the run
each queue and its compute environments are described once, so what remains is one SubmitJob
per job and the job definition's lookup (and registration, the first time a shape is seen).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path

import pytest

from .test_executor import snakemake_cmd, write_workflow

pytestmark = pytest.mark.integration

SPY = [sys.executable, str(Path(__file__).with_name("_spy_snakemake.py"))]
JOBS = 3


def test_small_run_describes_each_queue_and_environment_once(emulated_env, tmp_path):
    # A shape no other test uses (its own shm size), so the definition is registered here.
    shm = 64 + uuid.uuid4().int % 1000
    work = write_workflow(
        tmp_path / "callcount",
        f"""
        localrules: all
        rule all:
            input: expand("out/{{i}}.txt", i=range({JOBS}))
        rule work:
            output: "out/{{i}}.txt"
            resources: awsbatch_shm_mb={shm}
            shell: "echo {{wildcards.i}} > {{output}}"
        """,
    )
    spy_file = tmp_path / "spy.jsonl"
    cmd = snakemake_cmd(work)
    run = subprocess.run(
        [*SPY, *cmd[3:]],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "AWSBATCH_TEST_SPY_FILE": str(spy_file)},
    )
    assert run.returncode == 0, run.stderr[-3000:]
    records = [json.loads(line) for line in spy_file.read_text().splitlines()]
    calls = Counter(r["operation"] for r in records if r["kind"] == "request")
    polling = calls.pop("describe_jobs", 0)
    assert polling >= 1
    assert calls == {
        "describe_job_queues": 1,
        "describe_compute_environments": 1,
        "describe_job_definitions": 2,  # the lookup, then the check that the new one is visible
        "register_job_definition": 1,
        "submit_job": JOBS,
        # The root volume of the queue's instances, from its one launch template (EC2).
        "describe_launch_template_versions": 1,
    }, calls
