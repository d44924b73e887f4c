"""The emulation's ECS task metadata endpoint (v4): what the node agent reads its address from."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request

import pytest

from snakemake_executor_plugin_awsbatch_mpi.local.metadata import TaskMetadataServer
from snakemake_executor_plugin_awsbatch_mpi.mpi.agent import main_node_address


@pytest.fixture
def server():
    metadata = TaskMetadataServer()
    yield metadata
    metadata.close()


def get(uri: str) -> dict:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(uri, timeout=5) as answer:
        return json.load(answer)


def test_container_and_task_documents_report_the_address(server):
    token = server.register("node-1", "10.0.1.7")
    uri = server.uri(token)
    container = get(uri)
    assert container["Name"] == "node-1"
    assert container["Networks"] == [{"NetworkMode": "awsvpc", "IPv4Addresses": ["10.0.1.7"]}]
    assert get(f"{uri}/task")["Containers"] == [container]
    # The agent's own reader finds the address in it.
    assert main_node_address({"ECS_CONTAINER_METADATA_URI_V4": uri}) == "10.0.1.7"


def test_unknown_or_forgotten_containers_get_404(server):
    token = server.register("gone", "10.0.1.8")
    server.forget(token)
    for path in (server.path(token), "/v4/nope", "/v3/x", "/"):
        with pytest.raises(urllib.error.HTTPError) as raised:
            get(f"http://{server.host}:{server.port}{path}")
        assert raised.value.code == 404


def test_a_container_asking_before_its_address_is_known_waits_for_it(server):
    """Docker assigns the address at start; the container may ask a moment before."""
    token = server.register("early")
    threading.Timer(0.3, server.set_address, args=(token, "172.20.0.3")).start()
    started = time.monotonic()
    assert get(server.uri(token))["Networks"][0]["IPv4Addresses"] == ["172.20.0.3"]
    assert time.monotonic() - started < 2
