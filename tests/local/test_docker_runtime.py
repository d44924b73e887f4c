"""``--runtime docker``: Batch jobs in real containers of the images in containers/.

Needs a Docker engine and the two images (``make images``). Without them every test here
is skipped with the reason; ``AWSBATCH_MPI_REQUIRE_DOCKER=1`` (set by .ci/run) turns the
skip into a failure. The emulation runs as ``awsbatch-mpi local --runtime docker`` in a
subprocess: the in-process emulation of the other tests uses the process runtime, and one
process holds one emulation state.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from snakemake_executor_plugin_awsbatch_mpi.local import (
    JOB_ROLE_ACCESS_KEY_ID,
    LocalEmulation,
)
from snakemake_executor_plugin_awsbatch_mpi.local._common import TIMEOUT_REASON
from snakemake_executor_plugin_awsbatch_mpi.local.docker_runner import LABEL, docker_problem
from snakemake_executor_plugin_awsbatch_mpi.local.images import (
    DEFAULT_JOB_IMAGE,
    DEFAULT_MPI_IMAGE,
    image_present,
)
from snakemake_executor_plugin_awsbatch_mpi.local.patches import OOM_REASON

from ..test_demo import check_mpi_table
from ..test_example_workflow import config, expected, expected_report  # noqa: F401
from ._helpers import PRINT_ENV, SUBMITTER_SECRET, Aws

REQUIRE = os.environ.get("AWSBATCH_MPI_REQUIRE_DOCKER") == "1"
ROOT = Path(__file__).resolve().parents[2]


def _unavailable() -> str | None:
    problem = docker_problem()
    if problem is not None:
        return problem
    missing = [tag for tag in (DEFAULT_JOB_IMAGE, DEFAULT_MPI_IMAGE) if not image_present(tag)]
    if missing:
        return f"The images {', '.join(missing)} are missing: build them with `make images`."
    return None


@pytest.fixture(scope="module", autouse=True)
def docker_available() -> None:
    reason = _unavailable()
    if reason is None:
        return
    if REQUIRE:
        pytest.fail(f"AWSBATCH_MPI_REQUIRE_DOCKER=1 but Docker cannot be used: {reason}")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server(docker_available: None) -> Iterator[str]:
    """``awsbatch-mpi local --runtime docker`` on a free port; yields its endpoint."""
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "snakemake_executor_plugin_awsbatch_mpi.cli",
            "local",
            "--runtime",
            "docker",
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    endpoint = f"http://127.0.0.1:{port}"
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith(f"export AWS_ENDPOINT_URL={endpoint}"):
            break
    else:
        pytest.fail(f"awsbatch-mpi local --runtime docker did not start (exit {proc.wait()})")
    try:
        yield endpoint
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        left = subprocess.run(
            ["docker", "ps", "--all", "--quiet", "--filter", f"label={LABEL}"],
            capture_output=True,
            text=True,
        )
        assert not left.stdout.split(), "containers left behind after the emulation stopped"


class _Endpoint:
    """Just what Aws.connect reads of a LocalEmulation."""

    def __init__(self, endpoint: str):
        self.endpoint_url = endpoint
        self.region = "us-east-1"


@pytest.fixture(scope="module")
def aws(server: str) -> Aws:
    return Aws.connect(_Endpoint(server), secret=SUBMITTER_SECRET)  # type: ignore[arg-type]


def _register(aws: Aws, name: str, image: str, memory: int = 256, **extra: object) -> str:
    return aws.register(
        name,
        image=image,
        resourceRequirements=[
            {"type": "VCPU", "value": "1"},
            {"type": "MEMORY", "value": str(memory)},
        ],
        **extra,
    )


CGROUP_LIMITS = (
    "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max;"
    " echo CPU $(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us"
    " 2>/dev/null || cat /sys/fs/cgroup/cpu.max)"
)
REACH_S3 = "import boto3; boto3.client('s3').head_bucket(Bucket='snakemake-local'); print('S3 OK')"


def test_a_job_runs_in_its_image_with_batch_variables_limits_and_the_job_role(aws: Aws) -> None:
    definition = _register(aws, "docker-env", DEFAULT_JOB_IMAGE, memory=300)
    script = f'python -c "{PRINT_ENV}" && python -c "{REACH_S3}" && {CGROUP_LIMITS}'
    job = aws.wait(aws.submit_shell("docker-env", definition, script), timeout=120)
    messages = aws.log_messages(job["container"]["logStreamName"])
    assert job["status"] == "SUCCEEDED", messages
    printed = aws.printed_env(job["container"]["logStreamName"])
    env = printed["env"]
    assert printed["cwd"] == "/work"  # the image's WORKDIR, not a host directory
    assert env["HOME"] == "/home/snakemake"
    assert env["AWS_BATCH_JOB_ID"] == job["jobId"]
    assert env["AWS_BATCH_JQ_NAME"] == "local-cpu"
    assert env["AWS_ACCESS_KEY_ID"] == JOB_ROLE_ACCESS_KEY_ID
    assert SUBMITTER_SECRET not in json.dumps(env)
    assert not env["AWS_ENDPOINT_URL"].startswith("http://127.")  # reached through the bridge
    assert "S3 OK" in messages
    assert str(300 * 1024 * 1024) in messages  # --memory 300m
    cpu = next(m for m in messages if m.startswith("CPU "))
    quota, period = (int(x) for x in cpu.split()[1:3])
    assert quota / period == 1.0
    address = job["attempts"][-1]["container"]["networkInterfaces"][0]["privateIpv4Address"]
    assert address and not address.startswith("127.")  # its own address on a bridge


def test_a_job_over_its_memory_is_killed_and_reported_as_out_of_memory(aws: Aws) -> None:
    definition = _register(aws, "docker-oom", DEFAULT_JOB_IMAGE, memory=128)
    grab = 'python -c "x = bytearray(400 * 1024 * 1024); print(len(x))"'
    job = aws.wait(aws.submit_shell("docker-oom", definition, grab), timeout=120)
    assert job["status"] == "FAILED"
    attempt = job["attempts"][-1]["container"]
    assert attempt["reason"] == OOM_REASON
    assert attempt["exitCode"] == 137
    assert job["container"]["reason"] == OOM_REASON


def test_a_job_over_its_timeout_is_stopped(aws: Aws) -> None:
    definition = _register(aws, "docker-timeout", DEFAULT_JOB_IMAGE)
    started = time.monotonic()
    job_id = aws.submit_shell(
        "docker-timeout", definition, "sleep 120", timeout={"attemptDurationSeconds": 3}
    )
    job = aws.wait(job_id, timeout=90)
    assert job["status"] == "FAILED"
    assert job["statusReason"] == TIMEOUT_REASON
    assert time.monotonic() - started < 60


def test_an_image_the_engine_lacks_fails_like_an_image_batch_cannot_pull(aws: Aws) -> None:
    definition = _register(aws, "docker-missing", "awsbatch-mpi-no-such-image:0")
    job = aws.wait(aws.submit_shell("docker-missing", definition, "true"), timeout=60)
    assert job["status"] == "FAILED"
    assert job["container"]["reason"].startswith("CannotPullContainerError")


def test_the_disk_check_works_in_the_job_image(aws: Aws) -> None:
    """Issue 19 §2: the check before the rule runs needs only the image's `python`."""
    from snakemake_executor_plugin_awsbatch_mpi.core.disk_guard import (
        DISK_GUARD_EXIT_CODE,
        DISK_GUARD_MARK,
        guarded_command,
    )
    from snakemake_executor_plugin_awsbatch_mpi.core.request import JobRequest

    definition = _register(aws, "docker-disk", DEFAULT_JOB_IMAGE)
    results = {}
    for name, disk_mb in (("huge", 10**9), ("tiny", 1)):
        request = JobRequest(name, 1, {"disk_mb": disk_mb}, declared=frozenset({"disk_mb"}))
        [_, _, script] = guarded_command(("/bin/bash", "-c", "echo the rule ran"), request)
        job_id = aws.submit_shell(f"docker-disk-{name}", definition, script)
        results[name] = aws.wait(job_id, timeout=120)
    huge, tiny = results["huge"], results["tiny"]
    messages = aws.log_messages(huge["container"]["logStreamName"])
    assert huge["status"] == "FAILED", messages
    assert huge["attempts"][-1]["container"]["exitCode"] == DISK_GUARD_EXIT_CODE
    assert any(
        m.startswith(f"{DISK_GUARD_MARK} rule 'huge' asks for disk_mb=1000000000")
        and "its working directory /work has only" in m
        for m in messages
    ), messages
    assert "the rule ran" not in messages
    assert tiny["status"] == "SUCCEEDED"
    assert "the rule ran" in aws.log_messages(tiny["container"]["logStreamName"])


NODE_SCRIPT = """
import json, os, socket, time
index = int(os.environ["AWS_BATCH_JOB_NODE_INDEX"])
main = os.environ.get("AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS")
if index == 0:
    server = socket.create_server(("0.0.0.0", 47900))
    server.settimeout(60)
    peers = []
    for _ in range(2):
        conn, addr = server.accept()
        peers.append([conn.recv(64).decode(), addr[0]])
        conn.close()
    print("PEERS " + json.dumps(sorted(peers)), flush=True)
else:
    for _ in range(600):
        try:
            conn = socket.create_connection((main, 47900))
            break
        except OSError:
            time.sleep(0.05)
    conn.sendall(socket.gethostname().encode())
    conn.close()
    time.sleep(300)
"""


def test_nodes_of_a_multi_node_job_are_containers_on_their_own_network(aws: Aws) -> None:
    container = {
        "image": DEFAULT_MPI_IMAGE,
        "command": ["python", "-c", NODE_SCRIPT],
        "resourceRequirements": [
            {"type": "VCPU", "value": "1"},
            {"type": "MEMORY", "value": "256"},
        ],
    }
    definition = aws.batch.register_job_definition(
        jobDefinitionName="docker-mnp",
        type="multinode",
        nodeProperties={
            "numNodes": 3,
            "mainNode": 0,
            "nodeRangeProperties": [{"targetNodes": "0:", "container": container}],
        },
    )["jobDefinitionArn"]
    job_id = aws.submit("docker-mnp", definition, queue="local-mpi")
    job = aws.wait(job_id, timeout=120)
    main_stream = job["container"]["logStreamName"]
    assert job["status"] == "SUCCEEDED", aws.log_messages(main_stream)
    nodes = aws.batch.describe_jobs(jobs=[f"{job_id}#{i}" for i in range(3)])["jobs"]
    addresses = [n["container"]["networkInterfaces"][0]["privateIpv4Address"] for n in nodes]
    assert len(set(addresses)) == 3
    peers = json.loads(next(m for m in aws.log_messages(main_stream) if m.startswith("PEERS "))[6:])
    # Each child reached the main node from its own address, with its own host name.
    assert sorted(address for _, address in peers) == sorted(addresses[1:])
    assert len({host for host, _ in peers}) == 2
    child_env = {e["name"]: e["value"] for e in nodes[1]["container"]["environment"]}
    assert "AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS" not in child_env or (
        child_env["AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS"] == addresses[0]
    )


def test_the_example_workflow_runs_in_containers_with_mpi_ranks_on_three_hosts(
    tmp_path: Path,
    expected: dict,  # noqa: F811
) -> None:
    workdir = tmp_path / "demo"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake_executor_plugin_awsbatch_mpi.cli",
            "demo",
            "--runtime",
            "docker",
            "--workdir",
            str(workdir),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    log = workdir / "demo.log"
    assert proc.returncode == 0, proc.stdout[-3000:] + (
        log.read_text()[-5000:] if log.exists() else ""
    )
    # What the jobs stored in the emulated bucket (the demo saves it on disk), by content.
    objects = workdir / ".emulated-s3" / "objects" / "demo" / "results"
    assert (objects / "report.tsv").read_text() == expected_report(expected)
    check_mpi_table(objects / "mpi" / "base_counts.tsv", expected)
    with (objects / "mpi" / "base_counts.tsv").open() as handle:
        rows = [row for row in csv.DictReader(handle, delimiter="\t") if row["rank"] != "total"]
    assert len({row["host"] for row in rows}) == 3, rows  # 3 containers, a host name each
    assert "Jobs run in Docker containers" in proc.stdout


S3_PROBE = """
import sys, boto3
from botocore.config import Config
quick = Config(retries={"max_attempts": 1}, connect_timeout=3)
try:
    boto3.client("s3", config=quick).head_bucket(Bucket="snakemake-local")
    print("S3 OK", flush=True)
except Exception as err:
    print(f"S3 FAILED {type(err).__name__}", flush=True)
    sys.exit(3)
"""


def test_mpi_containers_without_a_way_to_s3_are_refused_until_the_endpoint_is_added(
    server: str, aws: Aws
) -> None:
    """The docker runner withholds S3 from node containers exactly like the process one."""
    import boto3

    from snakemake_executor_plugin_awsbatch_mpi.local.emulation import build_setup_network
    from snakemake_executor_plugin_awsbatch_mpi.local.network import NOTE_PREFIX

    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    ec2 = session.client("ec2", endpoint_url=server)
    [mpi_env] = aws.batch.describe_compute_environments(
        computeEnvironments=["local-mpi-ce"]
    )["computeEnvironments"]
    [own] = mpi_env["computeResources"]["subnets"]
    vpc = ec2.describe_subnets(SubnetIds=[own])["Subnets"][0]["VpcId"]
    subnet = build_setup_network(ec2, vpc, "us-east-1", "10.0.210.0/24", s3_endpoint=False)
    resources = {
        k: v
        for k, v in mpi_env["computeResources"].items()
        if k in ("type", "minvCpus", "maxvCpus", "instanceTypes", "instanceRole",
                 "securityGroupIds")
    }
    env = aws.batch.create_compute_environment(
        computeEnvironmentName="docker-public-only-ce", type="MANAGED", state="ENABLED",
        computeResources={**resources, "subnets": [subnet]},
        serviceRole=mpi_env["serviceRole"],
    )["computeEnvironmentArn"]
    aws.batch.create_job_queue(
        jobQueueName="docker-public-only", state="ENABLED", priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": env}],
    )
    container = {
        "image": DEFAULT_MPI_IMAGE,
        "command": ["python", "-c", S3_PROBE],
        "resourceRequirements": [
            {"type": "VCPU", "value": "1"},
            {"type": "MEMORY", "value": "256"},
        ],
    }
    definition = aws.batch.register_job_definition(
        jobDefinitionName="docker-s3-probe",
        type="multinode",
        nodeProperties={
            "numNodes": 2,
            "mainNode": 0,
            "nodeRangeProperties": [{"targetNodes": "0:", "container": container}],
        },
    )["jobDefinitionArn"]

    job = aws.wait(aws.submit("docker-refused", definition, queue="docker-public-only"),
                   timeout=120)
    messages = aws.log_messages(job["container"]["logStreamName"])
    assert job["status"] == "FAILED", messages
    assert messages[0].startswith(f"{NOTE_PREFIX} This node cannot reach S3"), messages
    assert "S3 FAILED EndpointConnectionError" in messages

    [table] = ec2.describe_route_tables(
        Filters=[{"Name": "association.subnet-id", "Values": [subnet]}]
    )["RouteTables"]
    ec2.create_vpc_endpoint(
        VpcId=vpc, ServiceName="com.amazonaws.us-east-1.s3", VpcEndpointType="Gateway",
        RouteTableIds=[table["RouteTableId"]],
    )
    job = aws.wait(aws.submit("docker-fixed", definition, queue="docker-public-only"),
                   timeout=120)
    messages = aws.log_messages(job["container"]["logStreamName"])
    assert job["status"] == "SUCCEEDED", messages
    assert "S3 OK" in messages


EXAMPLE_APP_IMAGE = "snakemake-awsbatch-mpi-example:0.1.0"  # containers/example-app
PI_SNAKEFILE = f"""
rule pi:
    output: "pi.txt"
    resources: mpi="mpirun", tasks=3, nodes=3, awsbatch_image="{EXAMPLE_APP_IMAGE}"
    shell: "{{resources.mpi}} -n {{resources.tasks}} mpi-pi {{output}} 3000000"
"""


def test_an_application_image_built_on_ours_runs_a_three_node_mpi_rule(
    server: str, aws: Aws, tmp_path: Path
) -> None:
    """containers/example-app (mpi-pi compiled on the MPI image) as a 3-node rule, through
    Snakemake and the plugin: one rank per container, the result stored in S3."""
    if not image_present(EXAMPLE_APP_IMAGE):
        reason = f"The image {EXAMPLE_APP_IMAGE} is missing: build it with `make images`."
        if REQUIRE:
            pytest.fail(f"AWSBATCH_MPI_REQUIRE_DOCKER=1 but {reason}")
        pytest.skip(reason)
    work = tmp_path / "apppi"
    work.mkdir()
    (work / "Snakefile").write_text(PI_SNAKEFILE)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SNAKEMAKE_"))}
    env.update(
        AWS_ENDPOINT_URL=server,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
    )
    proc = subprocess.run(
        [
            sys.executable, "-m", "snakemake",
            "--executor", "awsbatch-mpi",
            "--awsbatch-mpi-job-queue", "local-cpu",
            "--awsbatch-mpi-multinode-job-queue", "local-mpi",
            "--default-storage-provider", "s3",
            "--default-storage-prefix", "s3://snakemake-local/apppi",
            "--jobs", "1",
            "--seconds-between-status-checks", "1",
            "--latency-wait", "5",
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-5000:]
    text = aws.s3.get_object(Bucket="snakemake-local", Key="apppi/pi.txt")["Body"].read()
    rows = [line.split("\t") for line in text.decode().splitlines()]
    hosts = [row[2] for row in rows if row[0] == "rank"]
    assert len(hosts) == 3 and len(set(hosts)) == 3, rows  # a container (host name) per rank
    [pi] = [float(row[1]) for row in rows if row[0] == "pi"]
    assert abs(pi - 3.141592653589793) < 1e-9


def test_local_emulation_refuses_an_unknown_runtime() -> None:
    from snakemake_executor_plugin_awsbatch_mpi.local import EmulationError

    with pytest.raises(EmulationError, match="Unknown runtime 'podman'"):
        LocalEmulation(runtime="podman")
