"""Multi-node parallel jobs: every node a process with its own loopback address."""

from __future__ import annotations

import json
import socket
import time

import pytest

from snakemake_executor_plugin_awsbatch_mpi.local import NODE_ADDRESS_ENV, LocalEmulation

from ._helpers import IMAGE, Aws, wait_until

# Children connect to the main node from their own address; the main node reports who came.
# Children then linger, so the job only ends quickly if their nodes are stopped for them.
NODE_SCRIPT = """
import json, os, socket, sys, time, urllib.request
print("ENV " + json.dumps({"env": dict(os.environ), "cwd": os.getcwd()}), flush=True)
uri = os.environ["ECS_CONTAINER_METADATA_URI_V4"]
with urllib.request.urlopen(uri, timeout=5) as answer:
    print("METADATA " + answer.read().decode(), flush=True)
me = os.environ["AWSBATCH_MPI_LOCAL_NODE_ADDRESS"]
index = int(os.environ["AWS_BATCH_JOB_NODE_INDEX"])
nodes = int(os.environ["AWS_BATCH_JOB_NUM_NODES"])
port = int(os.environ["RENDEZVOUS_PORT"])
if index == int(os.environ["AWS_BATCH_JOB_MAIN_NODE_INDEX"]):
    server = socket.create_server((me, port))
    server.settimeout(20)
    peers = []
    for _ in range(nodes - 1):
        conn, addr = server.accept()
        peers.append([conn.recv(64).decode(), addr[0]])
        conn.close()
    print("PEERS " + json.dumps(sorted(peers)), flush=True)
    sys.exit(int(os.environ.get("MAIN_EXIT", "0")))
main = os.environ["AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS"]
for _ in range(200):
    try:
        conn = socket.create_connection((main, port), source_address=(me, 0))
        break
    except OSError:
        time.sleep(0.05)
conn.sendall(str(index).encode())
conn.close()
time.sleep(300)
"""


@pytest.fixture(scope="module")
def mnp_def(aws: Aws) -> str:
    with socket.socket() as probe:  # any port will do: each job binds its own address
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return aws.batch.register_job_definition(
        jobDefinitionName="local-test-mnp",
        type="multinode",
        nodeProperties={
            "numNodes": 2,
            "mainNode": 0,
            "nodeRangeProperties": [
                {
                    "targetNodes": "0:",
                    "container": {
                        "image": IMAGE,
                        "command": ["python", "-c", NODE_SCRIPT],
                        "environment": [{"name": "RENDEZVOUS_PORT", "value": str(port)}],
                        "resourceRequirements": [
                            {"type": "VCPU", "value": "1"},
                            {"type": "MEMORY", "value": "512"},
                        ],
                    },
                }
            ],
        },
    )["jobDefinitionArn"]


def test_multinode_job_runs_every_node_with_its_own_address(
    aws: Aws, mnp_def: str, emulation: LocalEmulation
) -> None:
    start = time.monotonic()
    job_id = aws.submit(
        "mnp-three",
        mnp_def,
        queue="local-mpi",
        nodeOverrides={
            "numNodes": 3,
            "nodePropertyOverrides": [
                {
                    "targetNodes": "1:",
                    "containerOverrides": {
                        "environment": [{"name": "ROLE", "value": "child"}],
                        "resourceRequirements": [{"type": "VCPU", "value": "2"}],
                    },
                }
            ],
        },
    )
    # A second job whose main node fails, at the same time, to show the address blocks and
    # the outcome rule (the main node's exit code decides) per job.
    failing_id = aws.submit(
        "mnp-main-fails",
        mnp_def,
        queue="local-mpi",
        nodeOverrides={
            "nodePropertyOverrides": [
                {
                    "targetNodes": "0",
                    "containerOverrides": {"environment": [{"name": "MAIN_EXIT", "value": "5"}]},
                }
            ]
        },
    )
    job = aws.wait(job_id, timeout=40)
    failing = aws.wait(failing_id, timeout=40)

    assert time.monotonic() - start < 30  # the lingering children were stopped
    assert job["status"] == "SUCCEEDED", job
    assert job["container"]["exitCode"] == 0
    assert job["nodeProperties"]["numNodes"] == 3
    assert failing["status"] == "FAILED"
    assert failing["container"]["exitCode"] == 5

    streams = [f"local-test-mnp/default/{job_id}/{i}" for i in range(3)]
    assert job["container"]["logStreamName"] == streams[0]
    envs = [aws.printed_env(stream)["env"] for stream in streams]
    addresses = [env[NODE_ADDRESS_ENV] for env in envs]
    assert len(set(addresses)) == 3
    assert all(a.startswith("127.") and a != "127.0.0.1" for a in addresses)
    for index, env in enumerate(envs):
        assert env["AWS_BATCH_JOB_NODE_INDEX"] == str(index)
        assert env["AWS_BATCH_JOB_NUM_NODES"] == "3"
        assert env["AWS_BATCH_JOB_MAIN_NODE_INDEX"] == "0"
        assert env["AWS_BATCH_JOB_ID"] == f"{job_id}#{index}"
        assert env["AWS_BATCH_JQ_NAME"] == "local-mpi"
        if index == 0:
            assert "AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS" not in env
            assert "ROLE" not in env
        else:
            assert env["AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS"] == addresses[0]
            assert env["ROLE"] == "child"
    # ECS's task metadata endpoint reports each node's own address, as on awsvpc tasks.
    for stream, address in zip(streams, addresses, strict=True):
        metadata = next(m for m in aws.log_messages(stream) if m.startswith("METADATA "))
        networks = json.loads(metadata[9:])["Networks"]
        assert networks == [{"NetworkMode": "awsvpc", "IPv4Addresses": [address]}]
    peers = next(m for m in aws.log_messages(streams[0]) if m.startswith("PEERS "))
    assert json.loads(peers[6:]) == [["1", addresses[1]], ["2", addresses[2]]]
    failing_env = aws.printed_env(f"local-test-mnp/default/{failing_id}/0")["env"]
    assert failing_env[NODE_ADDRESS_ENV] not in addresses

    nodes = aws.batch.describe_jobs(jobs=[f"{job_id}#0", f"{job_id}#2"])["jobs"]
    assert [n["nodeDetails"] for n in nodes] == [
        {"nodeIndex": 0, "isMainNode": True},
        {"nodeIndex": 2, "isMainNode": False},
    ]
    assert nodes[1]["container"]["logStreamName"] == streams[2]
    assert nodes[1]["container"]["networkInterfaces"] == [{"privateIpv4Address": addresses[2]}]
    assert nodes[1]["status"] == "SUCCEEDED"
    # Each node's description says what its container got (the run report reads it).
    sizes = [{r["type"]: r["value"] for r in n["container"]["resourceRequirements"]} for n in nodes]
    assert sizes == [{"VCPU": "1", "MEMORY": "512"}, {"VCPU": "2", "MEMORY": "512"}]
    assert wait_until(lambda: emulation.running_containers() == 0, timeout=5)


def test_node_overrides_are_validated(aws: Aws, mnp_def: str) -> None:
    with pytest.raises(aws.batch.exceptions.ClientException):
        aws.submit(
            "mnp-bad",
            mnp_def,
            queue="local-mpi",
            nodeOverrides={
                "numNodes": 2,
                "nodePropertyOverrides": [{"targetNodes": "5", "containerOverrides": {}}],
            },
        )


def test_job_definition_describes_node_properties(aws: Aws, mnp_def: str) -> None:
    definition = aws.batch.describe_job_definitions(jobDefinitions=[mnp_def])["jobDefinitions"]
    assert definition[0]["nodeProperties"]["numNodes"] == 2
