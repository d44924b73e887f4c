"""`awsbatch-mpi local` as a user runs it: one environment block, one signal stops it all."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest

pytestmark = pytest.mark.integration

BLOCK_START = "# Local AWS emulation (AWS Batch, S3, CloudWatch Logs)"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def descendants(pid: int) -> set[int]:
    """Every process below `pid` (by parent pid, whatever session it moved to)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def wait_until(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_local_prints_its_environment_once_and_stops_on_one_signal(tmp_path, signum):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    # Its own process group, like a foreground command in a terminal: Ctrl-C is SIGINT to
    # the group; `kill <pid>` is SIGTERM to the process.
    proc = subprocess.Popen(
        [sys.executable, "-m", "snakemake_executor_plugin_awsbatch_mpi.cli", "local",
         "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        first = []
        while not first or not first[-1].startswith("# Jobs run as"):  # the block's last line
            line = proc.stdout.readline()
            assert line, "the emulation never became ready"
            first.append(line)
        batch = boto3.client(
            "batch", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
            aws_access_key_id="testing", aws_secret_access_key="testing",
        )
        batch.register_job_definition(
            jobDefinitionName="long", type="container",
            containerProperties={
                "image": "python:3.11-slim",
                "command": ["/bin/bash", "-c", "sleep 300 & sleep 301; wait"],
                "resourceRequirements": [{"type": "VCPU", "value": "1"},
                                         {"type": "MEMORY", "value": "256"}],
            },
        )
        job = batch.submit_job(jobName="long", jobQueue="local-cpu", jobDefinition="long")
        assert wait_until(lambda: batch.describe_jobs(jobs=[job["jobId"]])["jobs"][0]["status"]
                          == "RUNNING", 30)
        assert wait_until(lambda: len(descendants(proc.pid)) >= 3, 15)  # bash + 2 sleeps
        started = descendants(proc.pid)

        if signum == signal.SIGINT:
            os.killpg(proc.pid, signal.SIGINT)
        else:
            proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        out = "".join(first) + out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err[-2000:]
    assert wait_until(lambda: not any(alive(pid) for pid in started), 10), [
        pid for pid in started if alive(pid)
    ]
    assert not listening(port)
    # the block goes to stdout, once; stderr has the log lines only
    assert out.count(BLOCK_START) == 1 and f"AWS_ENDPOINT_URL=http://127.0.0.1:{port}" in out
    assert "# Batch API quota: 50 calls per second, as on AWS" in out  # on by default
    assert BLOCK_START not in err and "export AWS_" not in err
    assert "stopping the local emulation" in err


def test_local_batch_quota_flag():
    from snakemake_executor_plugin_awsbatch_mpi.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["local"]).batch_quota == 50
    assert parser.parse_args(["local", "--batch-quota", "0"]).batch_quota == 0
    assert parser.parse_args(["local", "--batch-quota", "20"]).batch_quota == 20
