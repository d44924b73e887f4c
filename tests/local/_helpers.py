"""Client-side helpers: what a user of the emulation does with plain boto3."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import boto3

from snakemake_executor_plugin_awsbatch_mpi.local import LocalEmulation

TERMINAL = ("SUCCEEDED", "FAILED")
SUBMITTER_SECRET = "submitter-secret-do-not-leak-7f3a"
IMAGE = "public.ecr.aws/docker/library/python:3.11-slim"

# Prints the process environment and working directory as one JSON log line.
PRINT_ENV = (
    "import json, os; "
    "print('ENV ' + json.dumps({'env': dict(os.environ), 'cwd': os.getcwd()}), flush=True)"
)


@dataclass
class Aws:
    batch: Any
    logs: Any
    s3: Any
    emulation: LocalEmulation

    @classmethod
    def connect(cls, emu: LocalEmulation, secret: str) -> Aws:
        session = boto3.session.Session(
            aws_access_key_id="submitter",
            aws_secret_access_key=secret,
            region_name=emu.region,
        )
        return cls(
            batch=session.client("batch", endpoint_url=emu.endpoint_url),
            logs=session.client("logs", endpoint_url=emu.endpoint_url),
            s3=session.client("s3", endpoint_url=emu.endpoint_url),
            emulation=emu,
        )

    def register(self, name: str, **container: Any) -> str:
        properties = {
            "image": IMAGE,
            "command": ["/bin/true"],
            "resourceRequirements": [
                {"type": "VCPU", "value": "1"},
                {"type": "MEMORY", "value": "512"},
            ],
            **container,
        }
        return self.batch.register_job_definition(
            jobDefinitionName=name, type="container", containerProperties=properties
        )["jobDefinitionArn"]

    def submit(self, name: str, definition: str, queue: str = "local-cpu", **kwargs: Any) -> str:
        return self.batch.submit_job(
            jobName=name, jobQueue=queue, jobDefinition=definition, **kwargs
        )["jobId"]

    def submit_shell(self, name: str, definition: str, script: str, **kwargs: Any) -> str:
        overrides = kwargs.pop("containerOverrides", {})
        overrides["command"] = ["/bin/bash", "-c", script]
        return self.submit(name, definition, containerOverrides=overrides, **kwargs)

    def describe(self, job_id: str) -> dict[str, Any]:
        jobs = self.batch.describe_jobs(jobs=[job_id])["jobs"]
        assert len(jobs) == 1, jobs
        return jobs[0]

    def wait(
        self,
        job_id: str,
        statuses: tuple[str, ...] = TERMINAL,
        timeout: float = 30,
        seen: list[str] | None = None,
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            job = self.describe(job_id)
            if seen is not None and (not seen or seen[-1] != job["status"]):
                seen.append(job["status"])
            if job["status"] in statuses:
                return job
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job_id} still {job['status']} after {timeout}s")
            time.sleep(0.1)

    def log_messages(self, stream: str) -> list[str]:
        events = self.logs.get_log_events(
            logGroupName="/aws/batch/job", logStreamName=stream, startFromHead=True
        )["events"]
        return [event["message"] for event in events]

    def printed_env(self, stream: str) -> dict[str, Any]:
        """The JSON a PRINT_ENV command logged to ``stream``."""
        for message in self.log_messages(stream):
            if message.startswith("ENV "):
                return json.loads(message[4:])
        raise AssertionError(f"no ENV line in {stream}: {self.log_messages(stream)}")


def process_gone(pid: int) -> bool:
    """True if ``pid`` no longer runs (absent or a zombie nobody reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            stat = handle.read()
    except FileNotFoundError:
        return True
    return stat[stat.rfind(")") + 2 :].split()[0] == "Z"


def wait_until(predicate: Any, timeout: float = 10, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
