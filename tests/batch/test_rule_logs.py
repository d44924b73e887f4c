"""Reading a failed rule's `log:` files back from S3: bounded, saved, rendered."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from snakemake_executor_plugin_awsbatch_mpi.batch.client import BatchClient
from snakemake_executor_plugin_awsbatch_mpi.batch.rule_logs import (
    RuleLog,
    fetch_rule_logs,
    rule_log_lines,
)


@pytest.fixture
def s3_batch(aws_env):
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="bkt")
        yield s3, BatchClient(region="us-east-1", calls_per_second=1000)


def test_tail_is_bounded_in_bytes_and_lines_and_saved(s3_batch, tmp_path):
    s3, batch = s3_batch
    body = "".join(f"line {i}\n" for i in range(100_000))  # ~1 MB
    s3.put_object(Bucket="bkt", Key="run/logs/x.log", Body=body.encode())
    [log] = fetch_rule_logs(batch, ["s3://bkt/run/logs/x.log"], "x", "j1", max_lines=40,
                            max_bytes=1024, log_dir=tmp_path)
    assert log.lines[-1] == "line 99999" and len(log.lines) == 40
    assert log.truncated and log.size == len(body)
    assert batch.calls["s3_get_object"] == 1
    assert (tmp_path / "x-j1-rule-x.log").read_text().splitlines() == list(log.lines)
    [text] = rule_log_lines([log], shown=3)
    assert text == (
        "The rule's own log s3://bkt/run/logs/x.log (last 3 lines):\n"
        "    line 99997\n    line 99998\n    line 99999"
    )


def test_the_partial_first_line_of_a_byte_tail_is_dropped(s3_batch, tmp_path):
    s3, batch = s3_batch
    s3.put_object(Bucket="bkt", Key="l", Body=b"aaaaaaaaaa\nbb\ncc\n")
    [log] = fetch_rule_logs(batch, ["s3://bkt/l"], "r", "j", 40, max_bytes=8, log_dir=tmp_path)
    assert log.lines == ("bb", "cc") and log.truncated


def test_short_log_missing_log_empty_log(s3_batch, tmp_path):
    s3, batch = s3_batch
    s3.put_object(Bucket="bkt", Key="short", Body=b"only line\n")
    s3.put_object(Bucket="bkt", Key="empty", Body=b"")
    logs = fetch_rule_logs(
        batch, ["s3://bkt/short", "s3://bkt/gone", "s3://bkt/empty", "local/not-storage.log"],
        "r", "j", 40, log_dir=tmp_path,
    )
    assert [log.url for log in logs] == ["s3://bkt/short", "s3://bkt/gone", "s3://bkt/empty"]
    short, gone, empty = logs
    assert short.lines == ("only line",) and not short.truncated
    assert gone.missing and empty.lines == () and not empty.missing
    assert rule_log_lines(logs) == [
        "The rule's own log s3://bkt/short (all of it):\n    only line",
        "The rule's log s3://bkt/gone is not in storage: the job ended before the rule wrote "
        "it (see the job's log below).",
        "The rule's log s3://bkt/empty is empty.",
    ]


def test_unreadable_log_is_reported_not_raised(s3_batch, tmp_path):
    _, batch = s3_batch
    [log] = fetch_rule_logs(batch, ["s3://no-such-bucket/x"], "r", "j", 40, log_dir=tmp_path)
    assert log.error and not log.lines
    assert rule_log_lines([log])[0].startswith(
        "The rule's log s3://no-such-bucket/x could not be read from storage: "
    )


def test_rule_log_renders_first_in_the_failure_message():
    from snakemake_executor_plugin_awsbatch_mpi.batch.status import Failure, failure_message

    fail = Failure("j", "Essential container in task exited", None, 1, "s/1")
    block = rule_log_lines([RuleLog("s3://bkt/l", ("boom",), 5)])
    msg = failure_message("r", fail, "us-east-1", "/g", rule_logs=block).splitlines()
    assert msg[1:3] == ["The rule's own log s3://bkt/l (all of it):", "    boom"]
