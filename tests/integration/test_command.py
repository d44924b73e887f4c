"""Job commands through Snakemake, the plugin and the emulation: wildcards are data, cores fit.

One Snakemake run covers every way a job command reaches a container: single jobs, an array
job (command map in S3), a group job and a multi-node MPI job (command handed to the node
agent), all with hostile wildcard values and a hostile `--config` value.
"""

from __future__ import annotations

import json
import os
import subprocess

import boto3
import pytest

from snakemake_executor_plugin_awsbatch_mpi.local import LOCAL_BUCKET

from .conftest import jobs_with_tag
from .test_executor import snakemake_cmd, write_workflow

pytestmark = pytest.mark.integration

SNAKEFILE = """
import json

VALUES = {values!r}
MPI_VALUE = {mpi_value!r}

rule all:
    input:
        expand("single/{{x}}.txt", x=VALUES),
        "gathered.json",
        expand("mpi/{{x}}.txt", x=MPI_VALUE),

rule make:
    output: "raw/{{x}}.txt"
    run:
        with open(output[0], "w", encoding="utf-8") as out:
            out.write(wildcards.x)

rule single:
    input: "raw/{{x}}.txt"
    output: "single/{{x}}.txt"
    threads: {threads}
    run:
        got = open(input[0], encoding="utf-8").read()
        assert got == wildcards.x, (got, wildcards.x)
        with open(output[0], "w", encoding="utf-8") as out:
            out.write(f"{{wildcards.x}}|{{threads}}|{{config['hostile']}}")

rule check:
    group: "g"
    input: "raw/{{x}}.txt"
    output: "checked/{{x}}.txt"
    run:
        got = open(input[0], encoding="utf-8").read()
        assert got == wildcards.x, (got, wildcards.x)
        with open(output[0], "w", encoding="utf-8") as out:
            out.write(got)

rule gather:
    group: "g"
    input: expand("checked/{{x}}.txt", x=VALUES)
    output: "gathered.json"
    run:
        got = [open(path, encoding="utf-8").read() for path in input]
        with open(output[0], "w", encoding="utf-8") as out:
            json.dump(got, out)

rule mpi:
    input: "raw/{{x}}.txt"
    output: "mpi/{{x}}.txt"
    threads: 16
    resources: mpi="mpirun", tasks=4, nodes=2
    run:
        got = open(input[0], encoding="utf-8").read()
        assert got == wildcards.x, (got, wildcards.x)
        with open(output[0], "w", encoding="utf-8") as out:
            out.write(f"{{wildcards.x}}|{{threads}}")
"""


def hostile_values(sentinels) -> list[str]:
    """One value per form that a shell would interpret, each trying to touch a sentinel."""
    return [
        f"a'$(touch {sentinels / 'dollar'})",  # the reported case: ' then $()
        f'b"$(touch {sentinels / "dq"})"c',  # double quotes around $()
        f"c`touch {sentinels / 'tick'}`d",  # backticks
        f"d;touch {sentinels / 'semi'};e",  # ;
        "e'both\"quotes",  # both quote kinds (broke the command before)
        "with some spaces",
        "non-ascii é✓",
    ]


def s3_text(key: str) -> str:
    body = boto3.client("s3").get_object(Bucket=LOCAL_BUCKET, Key=key)["Body"].read()
    return body.decode("utf-8")


def test_hostile_wildcards_are_data_in_every_kind_of_job(emulated_env, tmp_path, batch_client):
    sentinels = tmp_path / "sentinels"
    sentinels.mkdir()
    values = hostile_values(sentinels)
    # more threads than the host has: with --cores 'all' the job would see only the host's
    threads = (os.cpu_count() or 1) + 1
    work = write_workflow(tmp_path / "hostile", SNAKEFILE.format(
        values=values, mpi_value=[values[0]], threads=threads))
    # a config value is as hostile as a wildcard: Snakemake quotes both with repr()
    config_value = f"x'$(touch {sentinels / 'config'})\"y"
    run = subprocess.run(
        snakemake_cmd(work, "--awsbatch-mpi-array-jobs", "make",
                      "--awsbatch-mpi-multinode-job-queue", "local-mpi",
                      "--config", f"hostile={config_value}"),
        cwd=work, capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-5000:]
    assert sorted(p.name for p in sentinels.iterdir()) == [], "an injected command ran"

    for value in values:
        assert s3_text(f"hostile/single/{value}.txt") == f"{value}|{threads}|{config_value}"
    assert json.loads(s3_text("hostile/gathered.json")) == values
    # 2 nodes x 2 tasks: the Snakemake job on the main node sees that node's 2 vCPUs
    assert s3_text(f"hostile/mpi/{values[0]}.txt") == f"{values[0]}|2"

    jobs = jobs_with_tag(batch_client, "snakemake-workflow", "hostile",
                         queues=("local-cpu", "local-mpi"))
    rules = sorted(j["tags"]["snakemake-rule"] for j in jobs)
    arrays = [j for j in jobs if (j.get("arrayProperties") or {}).get("size", 0) >= 2]
    assert {j["tags"]["snakemake-rule"] for j in arrays} == {"make"}, rules
    assert rules.count("single") == len(values) and rules.count("mpi") == 1, rules
    assert rules.count("g_check_gather") == 1, rules  # one group job, every value a target
    single = next(j for j in jobs if j["tags"]["snakemake-rule"] == "single")
    vcpu = {r["type"]: r["value"] for r in single["container"]["resourceRequirements"]}["VCPU"]
    assert vcpu == str(threads) and f"--cores {threads} " in single["container"]["command"][-1]


def test_pipes_and_values_snakemake_cannot_carry_are_refused_before_submission(
    emulated_env, tmp_path, batch_client
):
    """A pipe() would hang the job forever; a comma would run other wildcards or fail."""
    work = write_workflow(tmp_path / "refused", """
        rule all:
            input: "piped.out", "a,b.txt"
        rule produce:
            output: pipe("piped.fifo")
            shell: "echo hi > {output}"
        rule consume:
            input: "piped.fifo"
            output: "piped.out"
            shell: "cat {input} > {output}"
        rule commas:
            output: "{name}.txt"
            shell: "touch {output}"
    """)
    run = subprocess.run(snakemake_cmd(work), cwd=work, capture_output=True, text=True,
                         timeout=120)
    out = run.stdout + run.stderr
    assert run.returncode != 0
    assert "Rule 'produce' writes its output 'piped.fifo' with pipe()" in out
    assert "replace pipe() by temp()" in out
    assert "Rule 'commas': wildcard name='a,b' contains a comma" in out
    assert "Nothing was submitted." in out
    assert jobs_with_tag(batch_client, "snakemake-workflow", "refused") == []
