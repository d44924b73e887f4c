"""Rules in any image (issue 22) through Snakemake, the plugin and the emulation's process
runtime: the requests name the rule's image and mount the runtime, the job runs Snakemake
from the runtime (the process runtime's stand-in is this Python), and what cannot run is
refused before anything is submitted. The same workflows in real Python-less containers:
tests/local/test_anyimage_workflow.py."""

from __future__ import annotations

import subprocess

import boto3
import pytest

from snakemake_executor_plugin_awsbatch_mpi.core.anyimage import RUNTIME_MOUNT, RUNTIME_PYTHON
from snakemake_executor_plugin_awsbatch_mpi.local import LOCAL_BUCKET

from .conftest import jobs_with_tag
from .test_executor import snakemake_cmd, write_workflow

pytestmark = pytest.mark.integration

BWA = "quay.io/biocontainers/bwa:0.7.17--h7132678_9"
SNAKEFILE = f"""
rule all:
    input: "tool.txt", "plain.txt"

rule tool:
    output: "tool.txt"
    container: "docker://{BWA}"
    shell: "echo from the tool image > {{output}}"

rule plain:
    output: "plain.txt"
    shell: "echo plain > {{output}}"
"""


def test_a_container_rule_runs_in_its_image_with_the_runtime(emulated_env, tmp_path,
                                                             batch_client):
    work = write_workflow(tmp_path / "anyimg", SNAKEFILE)
    run = subprocess.run(
        snakemake_cmd(work, "--awsbatch-mpi-runtime-volume", "efs:fs-0123abcd"),
        cwd=work, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    s3 = boto3.client("s3")
    body = s3.get_object(Bucket=LOCAL_BUCKET, Key="anyimg/tool.txt")["Body"].read()
    assert body == b"from the tool image\n"
    jobs = {j["tags"]["snakemake-rule"]: j for j in jobs_with_tag(
        batch_client, "snakemake-workflow", "anyimg")}
    tool, plain = jobs["tool"], jobs["plain"]
    assert tool["container"]["image"] == BWA
    assert tool["container"]["command"][:2] == ["/bin/sh", "-c"]
    assert RUNTIME_PYTHON in tool["container"]["command"][2]
    [definition] = batch_client.describe_job_definitions(
        jobDefinitions=[tool["jobDefinition"]])["jobDefinitions"]
    assert definition["containerProperties"]["mountPoints"] == [
        {"sourceVolume": "vol0", "containerPath": RUNTIME_MOUNT, "readOnly": True}
    ]
    assert plain["container"]["command"][:2] == ["/bin/bash", "-c"]
    assert plain["container"]["image"] != BWA


def test_a_container_rule_without_the_runtime_setting_is_refused_up_front(
    emulated_env, tmp_path, batch_client
):
    work = write_workflow(tmp_path / "anyimgrefused", SNAKEFILE)
    run = subprocess.run(snakemake_cmd(work), cwd=work, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode != 0
    assert f"Rule 'tool': resource container='{BWA}'" in run.stderr
    assert "awsbatch-mpi runtime install --file-system FS_ID --job-queue QUEUE" in run.stderr
    assert jobs_with_tag(batch_client, "snakemake-workflow", "anyimgrefused") == []


def test_a_group_whose_rules_name_different_images_is_refused_up_front(
    emulated_env, tmp_path, batch_client
):
    snakefile = f"""
    rule all:
        input: "b.txt"

    rule a:
        output: "a.txt"
        group: "g"
        container: "docker://{BWA}"
        shell: "touch {{output}}"

    rule b:
        input: "a.txt"
        output: "b.txt"
        group: "g"
        container: "docker://quay.io/biocontainers/samtools:1.19--h50ea8bc_0"
        shell: "touch {{output}}"
    """
    work = write_workflow(tmp_path / "anyimggroup", snakefile)
    run = subprocess.run(
        snakemake_cmd(work, "--awsbatch-mpi-runtime-volume", "efs:fs-0123abcd"),
        cwd=work, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode != 0
    assert "its rules name different container images" in run.stderr
    assert "Nothing was submitted." in run.stderr
    assert jobs_with_tag(batch_client, "snakemake-workflow", "anyimggroup") == []
