"""Pure checks over hand-made describe_* answers (no AWS, no moto)."""

from __future__ import annotations

import json
import urllib.parse

import pytest

from snakemake_executor_plugin_awsbatch_mpi.batch.queues import queue_info_from
from snakemake_executor_plugin_awsbatch_mpi.core.spec import Platform
from snakemake_executor_plugin_awsbatch_mpi.ops import (
    checks,
    gpu_mpi_checks,
    instance_fit,
)
from snakemake_executor_plugin_awsbatch_mpi.ops.outcomes import Status


def env(name="ce", kind="EC2", types=("c5",), max_vcpus=64, state="ENABLED", status="VALID"):
    resources = {"type": kind, "maxvCpus": max_vcpus}
    if kind in ("EC2", "SPOT"):
        resources["instanceTypes"] = list(types)
    return {
        "computeEnvironmentName": name,
        "computeEnvironmentArn": f"arn:aws:batch:us-east-1:1:compute-environment/{name}",
        "type": "MANAGED",
        "state": state,
        "status": status,
        "statusReason": "broken instance role" if status != "VALID" else "ok",
        "computeResources": resources,
    }


def queue(name="q", state="ENABLED", status="VALID", envs=("ce",)):
    return {
        "jobQueueName": name,
        "state": state,
        "status": status,
        "statusReason": "CE invalid",
        "computeEnvironmentOrder": [
            {"order": i, "computeEnvironment": f"arn:aws:batch:us-east-1:1:compute-environment/{e}"}
            for i, e in enumerate(envs)
        ],
    }


def test_identity_and_region():
    ok = checks.check_identity({"Arn": "arn:me", "Account": "1"}, "eu-west-1")
    assert [r.status for r in ok] == [Status.PASS, Status.PASS]
    bad = checks.check_identity(None, None, "no AWS credentials were found")
    assert [r.status for r in bad] == [Status.FAIL, Status.FAIL]
    assert "--region" in bad[0].message and "no AWS credentials" in bad[1].message
    offline = checks.check_identity(None, "r", 'Could not connect to the endpoint URL: "x"')
    assert offline[1].status is Status.FAIL and "AWS_ENDPOINT_URL" in offline[1].message


@pytest.mark.parametrize(
    ("answer", "word"),
    [
        (None, "does not exist"),
        (queue(state="DISABLED"), "DISABLED"),
        (queue(status="INVALID"), "INVALID"),
        (queue(envs=()), "no compute environment"),
    ],
)
def test_queue_failures(answer, word):
    result = checks.check_queue("q", answer, "us-east-1")
    assert result.status is Status.FAIL and word in result.message


def test_queue_invalid_names_reason():
    assert "CE invalid" in checks.check_queue("q", queue(status="INVALID"), "r").message


def test_compute_environment_checks():
    assert checks.check_compute_environment(env())[0].status is Status.PASS
    invalid = checks.check_compute_environment(env(status="INVALID"))
    assert invalid[0].status is Status.FAIL and "broken instance role" in invalid[0].message
    disabled = checks.check_compute_environment(env(state="DISABLED"))
    assert disabled[0].status is Status.FAIL and "--state ENABLED" in disabled[0].message
    zero = checks.check_compute_environment(env(max_vcpus=0))
    assert zero[0].status is Status.FAIL and "maxvCpus" in zero[0].message
    unmanaged = {**env(), "type": "UNMANAGED", "computeResources": None}
    assert checks.check_compute_environment(unmanaged)[0].status is Status.WARN


def test_queue_info_from_matches_the_executor():
    info = queue_info_from("q", queue(), [env(kind="FARGATE")])
    assert info.platform is Platform.FARGATE
    info = queue_info_from("q", queue(), [env(kind="SPOT")])
    assert info.platform is Platform.EC2 and info.spot_only


def test_instance_patterns_expand_families_and_bundles():
    assert instance_fit.instance_patterns(env(types=("c5", "m5.large"))) == ["c5.*", "m5.large"]
    assert "c7i.*" in instance_fit.instance_patterns(env(types=("optimal",)))
    assert instance_fit.is_gpu_family("g4dn.xlarge") and instance_fit.is_gpu_family("p4d")
    assert not instance_fit.is_gpu_family("c5") and not instance_fit.is_gpu_family("inf2")


def test_gpu_queue():
    assert gpu_mpi_checks.check_gpu_queue("g", [env(types=("g5",))]).status is Status.PASS
    assert gpu_mpi_checks.check_gpu_queue("g", [env(types=("optimal",))]).status is Status.WARN
    cpu_only = gpu_mpi_checks.check_gpu_queue("g", [env(types=("c5",))])
    assert cpu_only.status is Status.FAIL and "c5" in cpu_only.message
    assert gpu_mpi_checks.check_gpu_queue("g", [env(kind="FARGATE")]).status is Status.FAIL


def test_multinode_queue():
    ok = gpu_mpi_checks.check_multinode_queue("m", [env()], {"ce": "pg"})
    assert [r.status for r in ok] == [Status.PASS, Status.PASS]
    spot = gpu_mpi_checks.check_multinode_queue("m", [env(kind="SPOT")], {})
    assert spot[0].status is Status.FAIL and "SPOT" in spot[0].message
    assert gpu_mpi_checks.check_multinode_queue("m", [env()], {})[1].status is Status.WARN
    unknown = gpu_mpi_checks.check_multinode_queue("m", [env()], {"ce": gpu_mpi_checks.UNKNOWN})
    assert unknown[1].status is Status.WARN and "could not be read" in unknown[1].message
    version = {"LaunchTemplateData": {"Placement": {"GroupName": "cluster-pg"}}}
    assert gpu_mpi_checks.placement_from_launch_template(version) == "cluster-pg"
    assert gpu_mpi_checks.placement_from_launch_template({"LaunchTemplateData": {}}) is None


def test_job_role_trust_in_every_encoding():
    document = {
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": ["ecs-tasks.amazonaws.com"]},
                "Action": ["sts:AssumeRole"],
            }
        ]
    }
    as_dict = {"AssumeRolePolicyDocument": document}
    as_text = {"AssumeRolePolicyDocument": urllib.parse.quote(json.dumps(document))}
    assert checks.check_job_role("arn", as_dict, None).status is Status.PASS
    assert checks.check_job_role("arn", as_text, None).status is Status.PASS
    denied = {
        "AssumeRolePolicyDocument": {"Statement": [{**document["Statement"][0], "Effect": "Deny"}]}
    }
    assert checks.check_job_role("arn", denied, None).status is Status.FAIL
    missing = checks.check_job_role("arn:r", None, "NoSuchEntity: not found")
    assert missing.status is Status.FAIL and "NoSuchEntity" in missing.message


def test_s3_uri():
    assert checks.parse_s3_uri("s3://b/p/q/") == ("b", "p/q")
    assert checks.parse_s3_uri("s3://b") == ("b", "")
    with pytest.raises(ValueError, match="s3://bucket/prefix"):
        checks.parse_s3_uri("b/p")
    assert checks.check_s3_prefix("s3://b/p", "AccessDenied").status is Status.FAIL
