"""The stuck-RUNNABLE warning: when, how often, and what it says."""

from __future__ import annotations

import boto3

from snakemake_executor_plugin_awsbatch_mpi.batch.client import BatchClient
from snakemake_executor_plugin_awsbatch_mpi.batch.runnable import (
    RunnableMonitor,
    demand_of,
    environment_text,
)

QUEUE_ARN = "arn:aws:batch:us-east-1:123456789012:job-queue/cpu-q"


def env(status="VALID", state="ENABLED", reason="Compute environment is available",
        types=("c5",), max_vcpus=64, desired=None):
    resources = {"type": "EC2", "maxvCpus": max_vcpus, "instanceTypes": list(types)}
    if desired is not None:
        resources["desiredvCpus"] = desired
    return {"computeEnvironmentName": "cpu-ce", "state": state, "status": status,
            "statusReason": reason, "computeResources": resources}


def job(job_id="j1", status="RUNNABLE", reason=None, vcpus="2", memory="4096"):
    description = {
        "jobId": job_id, "status": status, "jobQueue": QUEUE_ARN,
        "container": {"resourceRequirements": [{"type": "VCPU", "value": vcpus},
                                               {"type": "MEMORY", "value": memory}]},
    }
    if reason:
        description["statusReason"] = reason
    return description


class FakeBatch:
    """The one method the monitor calls, answering what the test sets."""

    def __init__(self, envs):
        self.envs = envs
        self.calls = 0

    def current_environments(self, queue_ref, max_age_seconds):
        self.calls += 1
        return self.envs


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def monitor(envs, minutes=1.0):
    warnings: list[str] = []
    batch, clock = FakeBatch(envs), Clock()
    return RunnableMonitor(batch, minutes, warnings.append, clock), warnings, batch, clock


def test_one_warning_per_queue_after_the_time_and_again_only_when_the_reason_changes():
    watch, warnings, batch, clock = monitor([env("INVALID", reason="CLIENT_ERROR - gone")])
    reason = "ACTION_REQUIRED - CE(s) associated with the job queue are invalid."
    assert reason.endswith(".")  # said once, not twice, in the warning
    watch.check({"j1": ("sort", job(reason=reason))})
    clock.now += 59
    watch.check({"j1": ("sort", job(reason=reason))})
    assert warnings == [] and batch.calls == 0  # nothing extra is described before it is due
    clock.now += 1
    for _ in range(3):  # more checks, and a second stuck job of the queue: still one warning
        watch.check({"j1": ("sort", job(reason=reason)), "j2": ("sort", job("j2", reason=reason))})
        clock.now += 30
    assert len(warnings) == 1
    text = warnings[0]
    assert "Queue 'cpu-q': Batch job j1 of rule 'sort' has been RUNNABLE for more than 1 " \
           "minute(s)" in text
    assert f"Batch says: {reason} Compute environments: " in text
    assert "at most 64 vCPUs (Batch reported none in use)" in text
    assert "'cpu-ce' ENABLED and INVALID (CLIENT_ERROR - gone)" in text
    assert "an instance type fits the job (up to c5)" in text
    assert "does not cancel" in text and "setup --runnable-timeout" in text
    assert "awsbatch-mpi doctor --job-queue cpu-q" in text
    batch.envs = [env("VALID", state="DISABLED")]  # the reason changes: one more warning
    watch.check({"j1": ("sort", job(reason=reason))})
    watch.check({"j1": ("sort", job(reason=reason))})
    assert len(warnings) == 2 and "'cpu-ce' DISABLED and VALID" in warnings[1]


def test_a_job_that_leaves_runnable_starts_over_and_zero_turns_it_off():
    watch, warnings, _, clock = monitor([env()])
    watch.check({"j1": ("r", job())})
    clock.now += 50
    watch.check({"j1": ("r", job(status="STARTING"))})
    clock.now += 20
    watch.check({"j1": ("r", job())})  # RUNNABLE again (a Batch retry): the clock restarts
    assert warnings == []
    off, quiet, batch, off_clock = monitor([env()], minutes=0)
    off.check({"j1": ("r", job())})
    off_clock.now += 10**6
    off.check({"j1": ("r", job())})
    assert quiet == [] and batch.calls == 0


def test_a_job_no_instance_type_fits_is_named_with_vcpus_in_use():
    text = environment_text(env(types=("c5.large",), desired=8, max_vcpus=16),
                            demand_of(job(vcpus="4")))
    assert "8 of 16 vCPUs in use" in text
    assert "the job can never run there" in text and "c5.large" in text
    assert "no statusReason yet" in monitor_text([env()])


def monitor_text(envs):
    watch, warnings, _, clock = monitor(envs, minutes=0.5)
    watch.check({"j1": ("r", job())})
    clock.now += 30
    watch.check({"j1": ("r", job())})
    return warnings[0]


def test_multi_node_demand_is_per_node():
    description = {"nodeProperties": {"numNodes": 3, "nodeRangeProperties": [
        {"targetNodes": "0:", "container": {"resourceRequirements": [
            {"type": "VCPU", "value": "36"}, {"type": "MEMORY", "value": "1000"}]}}]}}
    demand = demand_of(description)
    assert (demand.vcpus, demand.memory_mib, demand.nodes) == (36, 1000, 3)
    assert demand_of({"container": {}}) is None


def test_environments_are_described_again_at_most_once_per_refresh(moto_batch):
    client = BatchClient(region="us-east-1", calls_per_second=1000)
    first = client.current_environments("cpu-q", max_age_seconds=3600)
    assert [e["computeEnvironmentName"] for e in first] == ["cpu-ce"]
    client.current_environments("cpu-q", max_age_seconds=3600)
    assert client.calls["describe_compute_environments"] == 1
    assert client.calls["describe_job_queues"] == 1
    boto3.client("batch", region_name="us-east-1").update_compute_environment(
        computeEnvironment="cpu-ce", state="DISABLED")
    [again] = client.current_environments("cpu-q", max_age_seconds=0)
    assert again["state"] == "DISABLED"
    assert client.calls["describe_compute_environments"] == 2
