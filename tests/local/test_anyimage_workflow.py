"""Rules in stock images, through the plugin, on the emulation's docker runtime (issue 22).

The runtime is installed the way it is on AWS (`awsbatch-mpi runtime install`: a Batch job in
the runtime image copies it onto an EFS file system, emulated as a host directory), then a
workflow whose rules name Python-less images runs with S3 staging: a shell rule and a
`script:` rule in static busybox, and a 2-node MPI rule in an image with Open MPI and no
Python. Needs Docker and the images (see tests/local/_anyimage.py).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from snakemake_executor_plugin_awsbatch_mpi.local._common import LOCAL_BUCKET
from snakemake_executor_plugin_awsbatch_mpi.local.docker_runner import LABEL
from snakemake_executor_plugin_awsbatch_mpi.ops.runtime_install import RUNTIME_TAG

from ._anyimage import BUSYBOX, NOSHELL, OPENMPI, require_docker

pytestmark = pytest.mark.integration

PREFIX = "anyimage"
SNAKEFILE = f"""
rule all:
    input: "results/a.shell.txt", "results/script.txt", "results/ranks.txt"

rule shout:
    input: "data/{{sample}}.txt"
    output: "results/{{sample}}.shell.txt"
    container: "docker://{BUSYBOX}"
    shell:
        "tr a-z A-Z < {{input}} > {{output}}; "
        "(command -v python3 || command -v python || echo no-python) >> {{output}}"

rule count:
    input: "results/a.shell.txt", "results/b.shell.txt"
    output: "results/script.txt"
    container: "docker://{BUSYBOX}"
    script: "scripts/count.py"

rule ranks:
    output: "results/ranks.txt"
    container: "docker://{OPENMPI}"
    resources: mpi="mpirun", tasks=4, nodes=2, mem_mb=512
    shell:
        "{{resources.mpi}} -n {{resources.tasks}} sh -c "
        "'echo \\"$OMPI_COMM_WORLD_RANK $(hostname)\\"' | sort -n > {{output}}; "
        "(command -v python3 || echo no-python) >> {{output}}"
"""
SCRIPT = """
import sys
lines = open(snakemake.input[0]).read().splitlines() + open(snakemake.input[1]).read().splitlines()
with open(snakemake.output[0], "w") as out:
    out.write(f"{len(lines)} lines, first {lines[0]}\\n{sys.executable}\\n")
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    """`awsbatch-mpi local --runtime docker` on a free port."""
    require_docker()
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "snakemake_executor_plugin_awsbatch_mpi.cli", "local",
         "--runtime", "docker", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    url = f"http://127.0.0.1:{port}"
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith(f"export AWS_ENDPOINT_URL={url}"):
            break
    else:
        pytest.fail(f"awsbatch-mpi local --runtime docker did not start (exit {proc.wait()})")
    try:
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        left = subprocess.run(["docker", "ps", "--all", "--quiet", "--filter", f"label={LABEL}"],
                              capture_output=True, text=True)
        assert not left.stdout.split(), "containers left behind after the emulation stopped"


@pytest.fixture(scope="module")
def env(endpoint: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("AWS_", "SNAKEMAKE_AWSBATCH_MPI_"))}
    return {**clean, "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def _client(service: str, env: dict[str, str]):
    return boto3.client(service, endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def _cli(env: dict[str, str], *argv: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "snakemake_executor_plugin_awsbatch_mpi.cli",
                           *argv], env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def file_system(env: dict[str, str]) -> str:
    """An EFS file system with the runtime installed on it by `awsbatch-mpi runtime install`."""
    efs = _client("efs", env)
    fs_id = efs.create_file_system(CreationToken="anyimage-test")["FileSystemId"]
    started = time.monotonic()
    proc = _cli(env, "runtime", "install", "--file-system", f"efs:{fs_id}",
                "--job-queue", "local-cpu", "--poll-seconds", "0.5")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "awsbatch-mpi runtime 0.1.0 installed at /mnt/awsbatch-mpi-runtime/0.1.0" in (
        proc.stdout
    )
    assert f"--awsbatch-mpi-runtime-volume efs:{fs_id}" in proc.stdout
    print(f"runtime install: {time.monotonic() - started:.1f} s")
    tags = {t["Key"]: t["Value"] for t in efs.list_tags_for_resource(ResourceId=fs_id)["Tags"]}
    assert tags[RUNTIME_TAG].endswith(tuple("0123456789abcdef"))  # "<time> job <id>"
    # A second install finds it there and leaves it alone.
    again = _cli(env, "runtime", "install", "--file-system", fs_id, "--job-queue", "local-cpu",
                 "--poll-seconds", "0.5")
    assert again.returncode == 0 and "is already installed" in again.stdout, again.stdout
    return fs_id


def test_rules_in_python_less_images_run_through_the_plugin(
    env: dict[str, str], file_system: str, tmp_path: Path
) -> None:
    work = tmp_path / "wf"
    (work / "scripts").mkdir(parents=True)
    (work / "Snakefile").write_text(SNAKEFILE)
    (work / "scripts" / "count.py").write_text(SCRIPT)
    s3 = _client("s3", env)
    s3.put_object(Bucket=LOCAL_BUCKET, Key=f"{PREFIX}/data/a.txt", Body=b"alpha\nbeta\n")
    s3.put_object(Bucket=LOCAL_BUCKET, Key=f"{PREFIX}/data/b.txt", Body=b"gamma\n")
    started = time.monotonic()
    run = subprocess.run(
        [sys.executable, "-m", "snakemake", "--executor", "awsbatch-mpi", "-j", "4",
         "--awsbatch-mpi-job-queue", "local-cpu", "--awsbatch-mpi-multinode-job-queue",
         "local-mpi", "--awsbatch-mpi-runtime-volume", f"efs:{file_system}",
         "--container-image", "snakemake-awsbatch-mpi:0.1.0",
         "--default-storage-provider", "s3",
         "--default-storage-prefix", f"s3://{LOCAL_BUCKET}/{PREFIX}",
         "--awsbatch-mpi-log-tail-lines", "200",
         # The two `shout` jobs go as one array job: its children start the array runner
         # from the runtime, which runs each child's command with busybox's sh.
         "--awsbatch-mpi-array-jobs", "shout"],
        cwd=work, env=env, capture_output=True, text=True, timeout=900,
    )
    logs = "\n".join(p.read_text() for p in (work / ".snakemake/awsbatch-mpi/logs").glob("*.log")) \
        if (work / ".snakemake/awsbatch-mpi/logs").is_dir() else ""
    assert run.returncode == 0, run.stderr[-5000:] + logs[-5000:]
    print(f"workflow: {time.monotonic() - started:.1f} s")

    def read(key: str) -> str:
        return s3.get_object(Bucket=LOCAL_BUCKET, Key=f"{PREFIX}/{key}")["Body"].read().decode()

    assert read("results/a.shell.txt") == "ALPHA\nBETA\nno-python\n"
    assert read("results/b.shell.txt") == "GAMMA\nno-python\n"
    assert read("results/script.txt") == (
        "5 lines, first ALPHA\n/opt/awsbatch-mpi/runtime/0.1.0/bin/python\n"
    )
    batch = _client("batch", env)
    arrays = [j for j in batch.list_jobs(jobQueue="local-cpu", jobStatus="SUCCEEDED")[
        "jobSummaryList"] if j["jobName"].startswith("shout") and "-x2" in j["jobName"]]
    assert arrays, "the two shout jobs did not go as one array job"
    ranks = read("results/ranks.txt").splitlines()
    assert ranks[-1] == "no-python"
    rows = [line.split() for line in ranks[:-1]]
    assert [int(rank) for rank, _ in rows] == [0, 1, 2, 3]
    assert len({host for _, host in rows}) == 2, rows  # two containers, one per node


def test_an_image_without_a_shell_fails_with_a_clear_reason(env: dict[str, str]) -> None:
    """The container cannot start; the emulation reports it as ECS does, and the plugin's
    failure message says what to do (batch/status.py)."""
    from snakemake_executor_plugin_awsbatch_mpi.batch.status import (
        NO_SHELL_ADVICE,
        failure,
        failure_message,
    )

    batch = _client("batch", env)
    definition = batch.register_job_definition(
        jobDefinitionName="anyimage-noshell", type="container",
        containerProperties={"image": NOSHELL, "command": ["/bin/sh", "-c", "true"],
                             "resourceRequirements": [{"type": "VCPU", "value": "1"},
                                                      {"type": "MEMORY", "value": "256"}]},
    )["jobDefinitionArn"]
    job_id = batch.submit_job(jobName="noshell", jobQueue="local-cpu",
                              jobDefinition=definition)["jobId"]
    deadline = time.monotonic() + 60
    while (job := batch.describe_jobs(jobs=[job_id])["jobs"][0])["status"] not in (
        "SUCCEEDED", "FAILED"
    ):
        assert time.monotonic() < deadline, job["status"]
        time.sleep(0.3)
    assert job["status"] == "FAILED"
    message = failure_message("align", failure(job), "us-east-1", "/aws/batch/job")
    assert NO_SHELL_ADVICE in message, message
