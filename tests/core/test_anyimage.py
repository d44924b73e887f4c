"""Rules in any image (issue 22): which image a job runs, the runtime's mount and command."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import pytest

from snakemake_executor_plugin_awsbatch_mpi.batch.model import validate_request
from snakemake_executor_plugin_awsbatch_mpi.core.anyimage import (
    EXIT_NO_RUNTIME,
    RUNTIME_MOUNT,
    RUNTIME_PYTHON,
    ImageSource,
    choose_image,
    holds_snakemake,
    in_runtime,
    parse_runtime_volume,
)
from snakemake_executor_plugin_awsbatch_mpi.core.array_jobs import array_spec
from snakemake_executor_plugin_awsbatch_mpi.core.planner import plan_job, split_environment
from snakemake_executor_plugin_awsbatch_mpi.core.request import JobRequest, TranslationSettings
from snakemake_executor_plugin_awsbatch_mpi.core.spec import (
    Platform,
    QueueInfo,
    ResourceError,
    VolumeKind,
)

# How commands name the runtime's Python (the emulation's process runtime prefixes the path).
LAUNCHER = f'"${{AWSBATCH_LOCAL_FS_ROOT:-}}"{RUNTIME_PYTHON}'
BWA = "quay.io/biocontainers/bwa:0.7.17--h7132678_9"
OWN = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/snakemake-awsbatch-mpi:0.1.0"
RUNTIME = parse_runtime_volume("efs:fs-0123abcd")
SETTINGS = TranslationSettings(
    "cpu", OWN, multinode_job_queue="mpi", runtime_volume=RUNTIME,
    execution_role_arn="arn:aws:iam::123456789012:role/exec",
)
COMMAND = ("/bin/bash", "-c", "python -m snakemake --snakefile Snakefile --mode remote")
ENV = split_environment({}, ())


def plan(request: JobRequest, settings: TranslationSettings = SETTINGS, queue: str = "cpu",
         platform: Platform = Platform.EC2):
    return plan_job(request, settings, QueueInfo(queue, platform=platform), COMMAND, ENV,
                    "wf", "run1", mpi_key_uri="s3://b/p/.awsbatch-mpi/keys/k",
                    validate=validate_request)


def test_which_image_and_whether_the_runtime_is_mounted() -> None:
    tool = f"docker://{BWA}"
    default = choose_image(OWN, None, None, False, None)
    assert (default.image, default.source, default.runtime) == (OWN, ImageSource.DEFAULT, False)
    rule = choose_image(OWN, None, tool, False, None)
    assert (rule.image, rule.source, rule.runtime) == (BWA, ImageSource.CONTAINER, True)
    # Snakemake runs containers itself (apptainer): the directive is not the Batch image.
    assert choose_image(OWN, None, tool, True, None).image == OWN
    # awsbatch_image keeps working as documented (an image with Snakemake) and wins.
    resource = choose_image(OWN, "ghcr.io/me/gpu:1", tool, False, None)
    assert (resource.image, resource.runtime) == ("ghcr.io/me/gpu:1", False)
    assert choose_image(OWN, "ghcr.io/me/gpu:1", None, False, True).runtime
    # Known to hold Snakemake: the plugin's own image, a listed one, or the rule says so.
    assert not choose_image(OWN, None, f"docker://{OWN}", False, None).runtime
    assert not choose_image(OWN, None, "docker://ghcr.io/lab/snk:2", False, None,
                            ("ghcr.io/lab/*",)).runtime
    assert not choose_image(OWN, None, tool, False, False).runtime


def test_known_snakemake_images() -> None:
    assert holds_snakemake("snakemake-awsbatch-mpi:0.1.0-mpi", ())
    assert holds_snakemake(OWN, ())
    assert not holds_snakemake(BWA, ())
    assert holds_snakemake(BWA, (BWA,))
    assert not holds_snakemake(BWA + "x", (BWA,))


def test_runtime_volume_setting() -> None:
    assert (RUNTIME.kind, RUNTIME.source, RUNTIME.container_path, RUNTIME.read_only) == (
        VolumeKind.EFS, "fs-0123abcd", RUNTIME_MOUNT, True
    )
    with_ap = parse_runtime_volume("efs:fs-0123abcd:fsap-0123abcd")
    assert with_ap.access_point == "fsap-0123abcd"
    assert parse_runtime_volume("host:/opt/runtimes").source == "/opt/runtimes"
    for bad in ("efs:fs-0123abcd:/mnt", "nfs:server", "efs:nope", "host:relative",
                "efs:fs-0123abcd:ro"):
        with pytest.raises(ValueError, match="is not a runtime volume"):
            parse_runtime_volume(bad)


def test_a_tool_image_rule_gets_the_runtime_mounted_read_only_and_runs_snakemake_from_it():
    result = plan(JobRequest("align", 2, {}, container=f"docker://{BWA}"))
    props = result.register["containerProperties"]  # validated against botocore by plan_job
    assert props["image"] == BWA
    assert props["volumes"] == [{
        "name": "vol0",
        "efsVolumeConfiguration": {"fileSystemId": "fs-0123abcd", "transitEncryption": "ENABLED"},
    }]
    assert props["mountPoints"] == [
        {"sourceVolume": "vol0", "containerPath": RUNTIME_MOUNT, "readOnly": True}
    ]
    command = result.submit()["containerOverrides"]["command"]
    assert command[:2] == ["/bin/sh", "-c"]
    assert RUNTIME_PYTHON in command[2] and command[2].endswith("--scheduler greedy")
    assert (result.spec.runtime, result.spec.image_source) == (True, ImageSource.CONTAINER)
    # A rule that names its own job definition runs it as before (its image is the
    # definition's business).
    own = plan(JobRequest("align", 2, {"awsbatch_job_definition": "mine:3"},
                          container=f"docker://{BWA}"))
    assert own.register is None and not own.spec.runtime
    assert own.submit()["containerOverrides"]["command"] == list(COMMAND)
    # The same rule without container: runs as before, in the default image, with bash.
    before = plan(JobRequest("align", 2, {}))
    assert before.register["containerProperties"]["image"] == OWN
    assert "volumes" not in before.register["containerProperties"]
    assert before.submit()["containerOverrides"]["command"] == list(COMMAND)


def test_an_mpi_rule_in_a_tool_image_starts_the_node_agent_from_the_runtime() -> None:
    request = JobRequest("md", 1, {"mpi": "mpirun", "tasks": 4, "nodes": 2},
                         container="docker://ghcr.io/lab/gromacs-openmpi:2024")
    result = plan(request, queue="mpi")
    container = result.register["nodeProperties"]["nodeRangeProperties"][0]["container"]
    assert container["image"] == "ghcr.io/lab/gromacs-openmpi:2024"
    assert container["mountPoints"][0]["containerPath"] == RUNTIME_MOUNT
    overrides = result.submit()["nodeOverrides"]["nodePropertyOverrides"][0]["containerOverrides"]
    assert overrides["command"][:2] == ["/bin/sh", "-c"]
    assert overrides["command"][2].endswith(
        f"exec {LAUNCHER} -m snakemake_executor_plugin_awsbatch_mpi.mpi"
    )
    env = {e["name"]: e["value"] for e in overrides["environment"]}
    assert RUNTIME_PYTHON in env["AWSBATCH_MPI_COMMAND"]


def test_without_a_runtime_file_system_the_rule_is_refused_with_what_to_do() -> None:
    settings = dataclasses.replace(SETTINGS, runtime_volume=None)
    with pytest.raises(ResourceError) as raised:
        plan(JobRequest("align", 1, {}, container=f"docker://{BWA}"), settings)
    message = str(raised.value)
    assert message.startswith(f"Rule 'align': resource container='{BWA}'")
    assert "awsbatch-mpi runtime install" in message
    assert "--awsbatch-mpi-runtime-volume efs:FS_ID" in message
    assert "awsbatch_runtime=False" in message


def test_runtime_refusals_fargate_host_and_a_clashing_volume() -> None:
    host = dataclasses.replace(SETTINGS, runtime_volume=parse_runtime_volume("host:/rt"))
    request = JobRequest("align", 1, {}, container=f"docker://{BWA}")
    with pytest.raises(ResourceError, match="runtime-volume='host:/rt' .*Fargate, which has no"):
        plan(request, host, platform=Platform.FARGATE)
    # EFS works on Fargate.
    fargate = plan(request, platform=Platform.FARGATE)
    assert fargate.register["containerProperties"]["mountPoints"][0]["readOnly"] is True
    clash = JobRequest("align", 1, {"awsbatch_volumes": f"efs:fs-0123abce:{RUNTIME_MOUNT}"},
                       container=f"docker://{BWA}")
    with pytest.raises(ResourceError, match="is where the plugin's runtime is mounted"):
        plan(clash)
    for uri in ("library://lab/default/tool:1", "shub://lab/tool", "images/tool.sif"):
        with pytest.raises(ResourceError, match="Batch runs Docker \\(OCI\\) images only"):
            plan(JobRequest("align", 1, {}, container=uri))
    with pytest.raises(ResourceError, match="awsbatch_runtime='maybe'.*True or False"):
        plan(JobRequest("align", 1, {"awsbatch_runtime": "maybe"}))


def test_array_children_of_a_tool_image_rule_run_the_array_runner_from_the_runtime() -> None:
    spec = plan(JobRequest("align", 1, {}, container=f"docker://{BWA}")).spec
    parent = array_spec(spec, "s3://b/p/map.json", 3)
    assert parent.command[:2] == ("/bin/sh", "-c")
    assert parent.command[2].endswith(
        f"exec {LAUNCHER} -m snakemake_executor_plugin_awsbatch_mpi.array s3://b/p/map.json"
    )


def _sh(script: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["/bin/sh", "-c", script], cwd=cwd, capture_output=True, text=True)


def test_the_runtime_command_in_a_shell(tmp_path: Path) -> None:
    """What the command does in /bin/sh: a clear message without the runtime; with it,
    `python` is the runtime's for this shell only, and the greedy scheduler is asked for."""
    root = tmp_path / "runtime"
    command = "sh -c 'command -v python || echo none' && python -m snakemake --mode remote"
    missing = _sh(in_runtime(command, str(root)), tmp_path)
    assert missing.returncode == EXIT_NO_RUNTIME
    assert f"is not at {root} in this job: install it" in missing.stderr
    (root / "bin").mkdir(parents=True)
    fake = root / "bin" / "python"
    fake.write_text('#!/bin/sh\necho "runtime python: $*"\n')
    fake.chmod(0o755)
    ran = _sh(in_runtime(command, str(root)), tmp_path)
    assert ran.returncode == 0, ran.stderr
    image_python, runtime_call = ran.stdout.splitlines()
    # The rule's own shells do not see the function: `python` there is the image's, if any.
    assert image_python != str(fake) and "runtime" not in image_python
    assert runtime_call == "runtime python: -m snakemake --mode remote --scheduler greedy"


def test_translation_settings_of_the_executor_read_the_new_settings() -> None:
    from types import SimpleNamespace

    from snakemake_executor_plugin_awsbatch_mpi.core.request import translation_settings

    got = translation_settings(
        SimpleNamespace(job_queue="q", runtime_volume=RUNTIME, snakemake_images=None), OWN
    )
    assert got.runtime_volume == RUNTIME and got.snakemake_images == ()
