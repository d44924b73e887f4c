"""Container jobs through boto3 against the local emulation, as a client would run them."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from snakemake_executor_plugin_awsbatch_mpi.local import (
    JOB_ROLE_ACCESS_KEY_ID,
    JOB_ROLE_SECRET_ACCESS_KEY,
    LOCAL_BUCKET,
    LocalEmulation,
)

from ._helpers import PRINT_ENV, SUBMITTER_SECRET, Aws, process_gone, wait_until


def test_job_runs_through_lifecycle_and_logs_reach_cloudwatch(aws: Aws, shell_def: str) -> None:
    seen: list[str] = []
    job_id = aws.submit_shell(
        "lifecycle", shell_def, "echo to-stdout; echo to-stderr >&2; sleep 1; echo done"
    )
    job = aws.wait(job_id, seen=seen)

    assert job["status"] == "SUCCEEDED"
    assert "RUNNING" in seen and seen[-1] == "SUCCEEDED"
    assert job["container"]["exitCode"] == 0
    assert job["attempts"][-1]["container"]["exitCode"] == 0
    assert job["startedAt"] <= job["stoppedAt"]
    stream = job["container"]["logStreamName"]
    assert stream == f"local-test-shell/default/{job_id}"
    messages = aws.log_messages(stream)
    # stdout and stderr are read separately, so only each stream's own order is fixed.
    assert sorted(messages[:2]) == ["to-stderr", "to-stdout"] and messages[2:] == ["done"]


def test_nonzero_exit_fails_with_exit_code(aws: Aws, shell_def: str) -> None:
    job = aws.wait(aws.submit_shell("exit3", shell_def, "echo failing; exit 3"))

    assert job["status"] == "FAILED"
    assert job["container"]["exitCode"] == 3
    assert job["attempts"][-1]["container"]["exitCode"] == 3
    assert job["statusReason"] == "Essential container in task exited"
    summaries = aws.batch.list_jobs(jobQueue="local-cpu", jobStatus="FAILED")["jobSummaryList"]
    assert any(s["jobId"] == job["jobId"] and s["container"]["exitCode"] == 3 for s in summaries)


def test_depends_on_waits_and_propagates_failure(aws: Aws, shell_def: str) -> None:
    first = aws.submit_shell("dep-first", shell_def, "sleep 1.5")
    second = aws.submit_shell("dep-second", shell_def, "true", dependsOn=[{"jobId": first}])
    failing = aws.submit_shell("dep-failing", shell_def, "exit 1")
    doomed = aws.submit_shell("dep-doomed", shell_def, "true", dependsOn=[{"jobId": failing}])

    aws.wait(first, statuses=("RUNNING",))
    assert aws.describe(second)["status"] == "PENDING"
    assert aws.wait(first)["status"] == "SUCCEEDED"
    assert aws.wait(second)["status"] == "SUCCEEDED"

    doomed_job = aws.wait(doomed)
    assert doomed_job["status"] == "FAILED"
    assert doomed_job["statusReason"] == "Dependent Job failed"
    assert "startedAt" not in doomed_job


def test_timeout_kills_the_job_and_says_why(aws: Aws, shell_def: str) -> None:
    start = time.monotonic()
    job_id = aws.submit_shell(
        "timeout", shell_def, "sleep 30", timeout={"attemptDurationSeconds": 1}
    )
    job = aws.wait(job_id, timeout=15)

    assert time.monotonic() - start < 10
    assert job["status"] == "FAILED"
    assert job["statusReason"] == "Job attempt duration exceeded timeout"
    assert job["container"]["exitCode"] != 0


def test_terminate_kills_the_whole_process_group(
    aws: Aws, shell_def: str, emulation: LocalEmulation, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pids"
    # The grand-child ignores SIGTERM, as a stubborn tool would.
    script = (
        'bash -c \'trap "" TERM; exec sleep 300\' & echo $! >> "$PID_FILE"; '
        'echo $$ >> "$PID_FILE"; wait'
    )
    job_id = aws.submit_shell(
        "terminate",
        shell_def,
        script,
        containerOverrides={"environment": [{"name": "PID_FILE", "value": str(pid_file)}]},
    )
    assert wait_until(lambda: pid_file.exists() and len(pid_file.read_text().split()) == 2)
    pids = [int(pid) for pid in pid_file.read_text().split()]
    assert not any(process_gone(pid) for pid in pids)

    aws.batch.terminate_job(jobId=job_id, reason="Terminated by the test")
    job = aws.wait(job_id, timeout=15)

    assert job["status"] == "FAILED"
    assert job["statusReason"] == "Terminated by the test"
    assert wait_until(lambda: all(process_gone(pid) for pid in pids), timeout=5)
    assert wait_until(lambda: emulation.running_containers() == 0, timeout=5)


def test_job_gets_role_credentials_not_the_submitters(
    aws: Aws, shell_def: str, emulation: LocalEmulation, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SUBMITTER_SECRET)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "submitter")
    upload = (
        "import boto3; boto3.client('s3').put_object("
        f"Bucket='{LOCAL_BUCKET}', Key='from-job/' + __import__('os').environ["
        "'AWS_BATCH_JOB_ID'], Body=b'hello')"
    )
    job_id = aws.submit(
        "credentials",
        shell_def,
        containerOverrides={
            "command": ["/bin/bash", "-c", f'python -c "{PRINT_ENV}" && python -c "{upload}"'],
            "environment": [
                {"name": "FROM_OVERRIDE", "value": "yes"},
                # A job cannot smuggle in other credentials: the job role wins.
                {"name": "AWS_SECRET_ACCESS_KEY", "value": SUBMITTER_SECRET},
            ],
        },
    )
    job = aws.wait(job_id)
    assert job["status"] == "SUCCEEDED", job
    printed = aws.printed_env(job["container"]["logStreamName"])
    env = printed["env"]

    assert env["AWS_ACCESS_KEY_ID"] == JOB_ROLE_ACCESS_KEY_ID
    assert env["AWS_SECRET_ACCESS_KEY"] == JOB_ROLE_SECRET_ACCESS_KEY
    assert SUBMITTER_SECRET not in env.values()
    assert env["AWS_ENDPOINT_URL"] == emulation.job_endpoint_url
    assert env["AWS_DEFAULT_REGION"] == emulation.region
    assert env["AWS_BATCH_JOB_ID"] == job_id
    assert env["AWS_BATCH_JOB_ATTEMPT"] == "1"
    assert env["AWS_BATCH_JQ_NAME"] == "local-cpu"
    assert env["AWS_BATCH_CE_NAME"] == "local-cpu-ce"
    assert env["FROM_OVERRIDE"] == "yes"
    assert env["HOME"] == printed["cwd"]
    assert env["PATH"].split(os.pathsep)[0] == str(Path(sys.executable).parent)
    body = aws.s3.get_object(Bucket=LOCAL_BUCKET, Key=f"from-job/{job_id}")["Body"].read()
    assert body == b"hello"


def test_each_job_gets_a_fresh_private_directory(aws: Aws, shell_def: str) -> None:
    script = 'ls -A; echo "CWD $PWD"; echo secret > left-behind; mkdir -p sub'
    first = aws.wait(aws.submit_shell("fresh-1", shell_def, script))
    second = aws.wait(aws.submit_shell("fresh-2", shell_def, script))

    outputs = [aws.log_messages(job["container"]["logStreamName"]) for job in (first, second)]
    for messages in outputs:
        assert len(messages) == 1 and messages[0].startswith("CWD "), messages  # ls: empty
    directories = [Path(messages[0][4:]) for messages in outputs]
    assert directories[0] != directories[1]
    assert not any(directory.exists() for directory in directories)


def test_missing_executable_fails_instead_of_hanging(aws: Aws, shell_def: str) -> None:
    job_id = aws.submit(
        "missing-exe", shell_def, containerOverrides={"command": ["no-such-tool-xyz", "--help"]}
    )
    job = aws.wait(job_id, timeout=10)

    assert job["status"] == "FAILED"
    assert job["container"]["exitCode"] == 127
    assert "executable file not found" in job["container"]["reason"]
    assert job["statusReason"] == "Task failed to start"
    messages = aws.log_messages(job["container"]["logStreamName"])
    assert any("no-such-tool-xyz" in message for message in messages)


def test_describe_is_stable_and_complete(aws: Aws, shell_def: str) -> None:
    job_id = aws.submit_shell(
        "describe-stable",
        shell_def,
        "true",
        containerOverrides={
            "environment": [{"name": "ONE", "value": "1"}],
            "resourceRequirements": [{"type": "VCPU", "value": "2"}],
        },
    )
    for _ in range(3):
        container = aws.describe(job_id)["container"]
    # moto appended another AWS_BATCH_JOB_ID on every DescribeJobs.
    names = [entry["name"] for entry in container["environment"]]
    assert sorted(names) == ["AWS_BATCH_JOB_ID", "ONE"]
    # The definition merged with the overrides, as AWS shows it.
    requirements = {r["type"]: r["value"] for r in container["resourceRequirements"]}
    assert requirements == {"VCPU": "2", "MEMORY": "512"}
    assert container["image"].endswith("python:3.11-slim")
    aws.wait(job_id)


def test_fargate_queue_runs_jobs(aws: Aws) -> None:
    definition = aws.batch.register_job_definition(
        jobDefinitionName="local-test-fargate",
        type="container",
        platformCapabilities=["FARGATE"],
        containerProperties={
            "image": "public.ecr.aws/docker/library/python:3.11-slim",
            "command": ["python", "-c", PRINT_ENV],
            "executionRoleArn": aws.emulation.execution_role_arn,
            "resourceRequirements": [
                {"type": "VCPU", "value": "0.25"},
                {"type": "MEMORY", "value": "512"},
            ],
        },
    )["jobDefinitionArn"]
    job = aws.wait(aws.submit("fargate", definition, queue="local-fargate"))

    assert job["status"] == "SUCCEEDED"
    env = aws.printed_env(job["container"]["logStreamName"])["env"]
    assert env["AWS_BATCH_CE_NAME"] == "local-fargate-ce"
