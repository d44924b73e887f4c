"""Starting, refusing and stopping the emulation; the container runtime on its own."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest

from snakemake_executor_plugin_awsbatch_mpi.local import (
    ALL_LOCAL_QUEUES,
    LOCAL_BUCKET,
    EmulationError,
    LocalEmulation,
)
from snakemake_executor_plugin_awsbatch_mpi.local.emulation import loopback_host
from snakemake_executor_plugin_awsbatch_mpi.local.faults import BatchQuota
from snakemake_executor_plugin_awsbatch_mpi.local.runtime import (
    LocalContainerRuntime,
    StartRequest,
)

from ._helpers import IMAGE, Aws, process_gone, wait_until

REPO = Path(__file__).resolve().parents[2]


def test_emulation_creates_queues_bucket_and_roles(aws: Aws, emulation: LocalEmulation) -> None:
    queues = aws.batch.describe_job_queues(jobQueues=list(ALL_LOCAL_QUEUES))["jobQueues"]
    assert sorted(q["jobQueueName"] for q in queues) == sorted(ALL_LOCAL_QUEUES)
    assert all(q["state"] == "ENABLED" for q in queues)
    environments = aws.batch.describe_compute_environments()["computeEnvironments"]
    types = {ce["computeEnvironmentName"]: ce["computeResources"]["type"] for ce in environments}
    assert types["local-fargate-ce"] == "FARGATE"
    assert types["local-cpu-ce"] == types["local-mpi-ce"] == "EC2"
    aws.s3.head_bucket(Bucket=LOCAL_BUCKET)
    assert emulation.job_role_arn.startswith("arn:aws:iam::")
    assert emulation.client_env() == {
        "AWS_ENDPOINT_URL": emulation.endpoint_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }


def test_port_in_use_is_a_clear_error(emulation: LocalEmulation) -> None:
    with pytest.raises(EmulationError, match="--port"):
        LocalEmulation(port=emulation.port).start()
    with socket.create_server(("127.0.0.1", 0)) as taken:
        with pytest.raises(EmulationError, match="--port"):
            LocalEmulation(port=taken.getsockname()[1]).start()


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "::1", "example.com"])
def test_non_loopback_hosts_are_refused(host: str) -> None:
    with pytest.raises(EmulationError, match="loopback"):
        LocalEmulation(host=host).start()


def test_loopback_hosts_are_accepted() -> None:
    assert loopback_host("localhost") == "127.0.0.1"
    assert loopback_host("127.3.2.1") == "127.3.2.1"


def test_a_second_emulation_in_the_same_process_shares_the_first(
    aws: Aws, emulation: LocalEmulation, shell_def: str
) -> None:
    with LocalEmulation() as second:
        assert second.endpoint_url != emulation.endpoint_url
        assert second.job_role_arn == emulation.job_role_arn
        assert second.job_endpoint_url == emulation.job_endpoint_url
        other = Aws.connect(second, secret="other")
        job_id = other.submit_shell("via-second", shell_def, "true")
        assert aws.wait(job_id)["status"] == "SUCCEEDED"  # one state behind both
        with pytest.raises(EmulationError, match="region"):
            LocalEmulation(region="eu-west-1").start()
    # Stopping the second leaves the first (and its jobs' endpoint) working.
    head_bucket = f"import boto3; boto3.client('s3').head_bucket(Bucket='{LOCAL_BUCKET}')"
    reach_s3 = f'python -c "{head_bucket}"'
    job = aws.wait(aws.submit_shell("after-second", shell_def, reach_s3))
    assert job["status"] == "SUCCEEDED", aws.log_messages(job["container"]["logStreamName"])


def test_process_runner_runs_a_container_with_a_clean_environment(tmp_path: Path) -> None:
    runtime = LocalContainerRuntime(tmp_path, "http://127.0.0.1:1", "us-east-1")
    container = runtime.start(
        StartRequest(
            name="plain",
            image="any",
            command=["/bin/sh", "-c", "echo out; echo err >&2; pwd; exit 4"],
            environment={"AWS_SECRET_ACCESS_KEY": "leak"},
        )
    )
    assert container.wait(timeout=10) == 4
    assert container.address == "127.0.0.1"
    assert not container.oom_killed
    lines = container.log_lines()
    stdout = [line.text for line in lines if line.stream == "stdout"]
    assert stdout[0] == "out"
    assert stdout[1] == str(container.root / "work")
    assert [line.text for line in lines if line.stream == "stderr"] == ["err"]
    assert all(abs(line.timestamp - time.time()) < 60 for line in lines)
    assert container.environment["AWS_SECRET_ACCESS_KEY"] == "local-job-role-secret"
    root = container.root
    assert root.exists()
    container.remove()
    assert not root.exists()
    runtime.shutdown()


def test_serve_forever_stops_everything_on_sigterm(tmp_path: Path) -> None:
    """A separate process, because moto's state allows one emulation per process."""
    script = (
        "import json, logging\n"
        "from snakemake_executor_plugin_awsbatch_mpi.local.server import serve_forever\n"
        "started = []\n"
        "def ready(emu):\n"
        "    started.append(emu)\n"
        "    print(json.dumps(emu.client_env()), flush=True)\n"
        "serve_forever(0, on_ready=ready)\n"
        "print(json.dumps({'running': started[0].running_containers()}), flush=True)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    server = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert server.stdout is not None
        client_env = json.loads(server.stdout.readline())
        batch = boto3.client(
            "batch",
            endpoint_url=client_env["AWS_ENDPOINT_URL"],
            aws_access_key_id=client_env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=client_env["AWS_SECRET_ACCESS_KEY"],
            region_name=client_env["AWS_DEFAULT_REGION"],
        )
        pid_file = tmp_path / "pids"
        batch.register_job_definition(
            jobDefinitionName="long",
            type="container",
            containerProperties={
                "image": IMAGE,
                "command": [
                    "/bin/bash",
                    "-c",
                    f"sleep 300 & echo $! >> {pid_file}; echo $$ >> {pid_file}; wait",
                ],
                "resourceRequirements": [
                    {"type": "VCPU", "value": "1"},
                    {"type": "MEMORY", "value": "512"},
                ],
            },
        )
        for name in ("long-1", "long-2"):
            batch.submit_job(jobName=name, jobQueue="local-cpu", jobDefinition="long")
        assert wait_until(
            lambda: pid_file.exists() and len(pid_file.read_text().split()) == 4, timeout=15
        )
        pids = [int(pid) for pid in pid_file.read_text().split()]

        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=20) == 0
        assert json.loads(server.stdout.readline()) == {"running": 0}
        assert all(process_gone(pid) for pid in pids)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def test_batch_quota_is_a_one_second_window_without_burst() -> None:
    quota = BatchQuota(rate=50)
    assert all(quota.admit(10.0 + i / 1000) for i in range(50))  # 50 within 50 ms
    assert not quota.admit(10.5)  # the 51st call within one second
    assert quota.admit(11.001)  # the window slid past the first call
    assert quota.counts == {"passed": 51, "throttled": 1}
    with pytest.raises(ValueError, match="positive rate"):
        BatchQuota(rate=0)
    with pytest.raises(EmulationError, match="0 \\(off\\) or a positive"):
        LocalEmulation(batch_quota=-1)


def test_the_emulation_answers_429_above_the_quota_and_botocore_recovers(
    emulation: LocalEmulation,
) -> None:
    """On by default, as on AWS. A client without retries meets the 429; the plugin's
    clients (adaptive retry mode) get every answer."""
    from botocore.config import Config
    from botocore.exceptions import ClientError

    from snakemake_executor_plugin_awsbatch_mpi.batch import clients
    from snakemake_executor_plugin_awsbatch_mpi.local.faults import install_quota

    assert emulation.batch_quota is not None and emulation.batch_quota.rate == 50
    env = {k: v for k, v in emulation.client_env().items() if k != "AWS_ENDPOINT_URL"}
    session = boto3.session.Session(
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=emulation.region,
    )
    bare = session.client(
        "batch", endpoint_url=emulation.endpoint_url,
        config=Config(retries={"mode": "standard", "max_attempts": 1}),
    )
    ours = session.client(
        "batch", endpoint_url=emulation.endpoint_url, config=clients.config(clients.Purpose.RUN)
    )
    quota = install_quota(4)  # low, so that a loaded test machine surely exceeds it
    try:
        codes = []
        for _ in range(12):
            try:
                bare.describe_job_queues(jobQueues=["local-cpu"])
                codes.append(200)
            except ClientError as err:
                codes.append(err.response["ResponseMetadata"]["HTTPStatusCode"])
                assert err.response["Error"]["Code"] == "TooManyRequestsException"
        assert 429 in codes and codes[:4] == [200] * 4
        answers = [ours.describe_job_queues(jobQueues=["local-cpu"]) for _ in range(12)]
        assert all(a["jobQueues"] for a in answers)
        assert quota.counts["throttled"] >= codes.count(429)
    finally:
        emulation.batch_quota = install_quota(emulation.batch_quota.rate)
