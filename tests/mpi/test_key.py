"""The rendezvous key: its URI, reading it (file://, s3:// with moto), the helpers' key file,
the address a node listens on, and which stranger the gate drops first."""

from __future__ import annotations

import os
import socket
import stat

import boto3
import pytest
from moto import mock_aws

from snakemake_executor_plugin_awsbatch_mpi.mpi import agent, gate, key
from snakemake_executor_plugin_awsbatch_mpi.mpi.key import KeyUnavailable

URI = "s3://bucket/run/.awsbatch-mpi/keys/r1/k1"


def test_key_uri_and_new_keys():
    assert key.key_uri("s3://b/run/", "r1", "k1") == "s3://b/run/.awsbatch-mpi/keys/r1/k1"
    first, second = key.new_key(), key.new_key()
    assert len(first) == 64 and int(first, 16) >= 0 and first != second
    assert key.split_s3_uri(URI) == ("bucket", "run/.awsbatch-mpi/keys/r1/k1")
    for bad in ("file:///x", "s3://bucket", "s3:///key"):
        with pytest.raises(ValueError):
            key.split_s3_uri(bad)


def test_read_key_from_a_file(tmp_path):
    path = tmp_path / "key"
    path.write_text("a" * 64 + "\n")
    assert key.read_key(f"file://{path}") == b"a" * 64
    path.write_text("short")
    with pytest.raises(KeyUnavailable, match="shorter than 32"):
        key.read_key(f"file://{path}")
    with pytest.raises(KeyUnavailable, match="cannot read"):
        key.read_key(f"file://{tmp_path}/missing")


@pytest.fixture
def s3(monkeypatch):
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        client = boto3.client("s3")
        client.create_bucket(Bucket="bucket")
        yield client


def test_read_and_delete_an_s3_key(s3):
    secret = key.new_key()
    s3.put_object(Bucket="bucket", Key="run/.awsbatch-mpi/keys/r1/k1", Body=secret.encode())
    assert key.read_key(URI) == secret.encode()
    assert key.delete_key(URI) is None
    assert key.delete_key(URI) is None  # twice is harmless
    with pytest.raises(KeyUnavailable, match="s3:GetObject") as info:
        key.read_key(URI)
    assert secret not in str(info.value)
    assert key.delete_key("file:///tmp/not-ours") is None  # file keys are left alone


def test_key_file_for_the_helpers(tmp_path, monkeypatch):
    path = key.write_key_file(b"k" * 64)
    try:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert key.load_secret({"AWSBATCH_MPI_KEY_FILE": path}) == b"k" * 64
    finally:
        os.unlink(path)
    with pytest.raises(ValueError, match="AWSBATCH_MPI_KEY_FILE is not set"):
        key.load_secret({})
    with pytest.raises(ValueError, match="cannot read"):
        key.load_secret({"AWSBATCH_MPI_KEY_FILE": str(tmp_path / "gone")})


def test_node_without_its_key_stops_with_a_clear_message(cluster_factory, tmp_path):
    cluster = cluster_factory(num_nodes=2, join_timeout=3)
    cluster.start(1, AWSBATCH_MPI_KEY_URI=f"file://{tmp_path}/missing")
    child = cluster.wait(timeout=30)[1]
    assert child.code == 78, cluster.logs()
    assert "cannot read the rendezvous key file" in child.err


BASE_ENV = {
    "AWSBATCH_MPI_KEY_URI": URI,
    "AWS_BATCH_JOB_NODE_INDEX": "0",
    "AWS_BATCH_JOB_MAIN_NODE_INDEX": "0",
    "AWS_BATCH_JOB_NUM_NODES": "2",
    "AWSBATCH_MPI_COMMAND": "true",
}


def test_address_from_ecs_task_metadata():
    document = {"Networks": [{"NetworkMode": "awsvpc", "IPv4Addresses": ["10.0.2.106"]}]}
    assert agent.address_from_task_metadata(document) == "10.0.2.106"
    assert agent.address_from_task_metadata({"Networks": [{"NetworkMode": "host"}]}) is None
    assert agent.address_from_task_metadata({}) is None


def test_bind_address_is_the_private_one():
    main = agent.Config.from_env(BASE_ENV)
    assert agent.bind_address(main, {}) == "0.0.0.0"  # no metadata endpoint: no better choice
    local = agent.Config.from_env({**BASE_ENV, "AWSBATCH_MPI_LOCAL_NODE_ADDRESS": "127.0.0.5"})
    assert agent.bind_address(local, {}) == "127.0.0.5"
    child = agent.Config.from_env(
        {
            **BASE_ENV,
            "AWS_BATCH_JOB_NODE_INDEX": "1",
            "AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS": "127.0.0.1",
        }
    )
    assert agent.bind_address(child, {}) == "127.0.0.1"  # the address routing to the main node


def test_main_node_address_from_a_metadata_endpoint():
    """Against a tiny HTTP server standing in for ECS's task metadata endpoint."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            body = json.dumps({"Networks": [{"IPv4Addresses": ["127.0.0.7"]}]}).encode()
            self.send_response(200)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        uri = f"http://127.0.0.1:{server.server_port}/v4/abc"
        config = agent.Config.from_env(BASE_ENV)
        assert agent.bind_address(config, {"ECS_CONTAINER_METADATA_URI_V4": uri}) == "127.0.0.7"
    finally:
        server.shutdown()
    assert agent.main_node_address({"ECS_CONTAINER_METADATA_URI_V4": uri}) is None  # down


def test_gate_drops_the_oldest_connection_of_the_busiest_address():
    socks = [socket.socket() for _ in range(4)]
    try:
        pending = {
            socks[0]: gate.Pending(socks[0], "10.0.0.9:1", b"", 0.0),  # a node, oldest
            socks[1]: gate.Pending(socks[1], "10.0.0.66:1", b"", 0.0),
            socks[2]: gate.Pending(socks[2], "10.0.0.66:2", b"", 0.0),
            socks[3]: gate.Pending(socks[3], "10.0.0.8:1", b"", 0.0),
        }
        assert gate.victim(pending) is socks[1]
    finally:
        for sock in socks:
            sock.close()


def test_open_file_limit_is_raised_to_the_hard_limit():
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 256), hard))
        assert agent.raise_open_file_limit() == (hard if hard != resource.RLIM_INFINITY else
                                                 max(256, 65536))
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
