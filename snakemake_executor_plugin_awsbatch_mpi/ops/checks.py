"""Pure checks of an AWS Batch setup, over data already fetched from the describe_* APIs.

Every function takes plain dicts shaped like boto3's answers (DescribeJobQueues,
DescribeComputeEnvironments, DescribeInstanceTypes, GetRole, ...) and returns
`CheckResult`s: one line each, PASS / WARN / FAIL, whose message says what to do next.
Nothing here calls AWS, so every check is unit-tested with hand-made dicts or moto's answers.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ..capacity import BUNDLES
from ..queues import (  # noqa: F401 - re-exported: the doctor reads queues through `checks`
    capacity_type,
    environments_of,
    queue_environment_arns,
    queue_info_from,
)


class Status(StrEnum):
    PASS = "PASS"
    WARN = "WARN"
    FAIL = "FAIL"


@dataclass(frozen=True)
class CheckResult:
    """One line of `awsbatch-mpi doctor`: what was checked, how it went, what to do."""

    status: Status
    check: str
    message: str

    def line(self) -> str:
        return f"{self.status.value:4}  {self.check}: {self.message}"


def passed(check: str, message: str) -> CheckResult:
    return CheckResult(Status.PASS, check, message)


def warned(check: str, message: str) -> CheckResult:
    return CheckResult(Status.WARN, check, message)


def failed(check: str, message: str) -> CheckResult:
    return CheckResult(Status.FAIL, check, message)


def render(results: Iterable[CheckResult]) -> str:
    """The doctor's report: one line per check, then a one-line summary."""
    results = list(results)
    lines = [r.line() for r in results]
    counts = {s: sum(1 for r in results if r.status is s) for s in Status}
    summary = (
        f"{counts[Status.PASS]} passed, {counts[Status.WARN]} warning(s), "
        f"{counts[Status.FAIL]} failed."
    )
    if counts[Status.FAIL]:
        summary += " Fix the FAIL lines above before running the workflow."
    elif counts[Status.WARN]:
        summary += " The setup works; the warnings say what may still go wrong."
    else:
        summary += " The setup is ready."
    return "\n".join([*lines, summary])


def has_failures(results: Iterable[CheckResult]) -> bool:
    return any(r.status is Status.FAIL for r in results)


# Credentials ------------------------------------------------------------------------------


def check_identity(
    identity: Mapping[str, Any] | None, region: str | None, error: str | None = None
) -> list[CheckResult]:
    """sts:GetCallerIdentity answered (credentials work) and a region is known."""
    results: list[CheckResult] = []
    if not region:
        results.append(
            failed(
                "region",
                "No AWS region is configured. Pass --region, or set AWS_DEFAULT_REGION or "
                "a region in your AWS profile.",
            )
        )
    else:
        results.append(passed("region", f"Using region {region}."))
    if identity is None and error and "Could not connect" in error:
        results.append(
            failed(
                "credentials",
                f"AWS could not be reached to check the credentials ({error}). Check the "
                "network, a proxy, or AWS_ENDPOINT_URL, and run the doctor again.",
            )
        )
    elif identity is None:
        results.append(
            failed(
                "credentials",
                f"AWS credentials do not work ({error or 'no answer'}). Log in (aws sso login, "
                "AWS_PROFILE, or access keys) and run the doctor again.",
            )
        )
    else:
        results.append(
            passed(
                "credentials",
                f"Signed in as {identity.get('Arn', '?')} "
                f"(account {identity.get('Account', '?')}).",
            )
        )
    return results


# Queues and compute environments ----------------------------------------------------------


def check_queue(name: str, queue: Mapping[str, Any] | None, region: str | None) -> CheckResult:
    """The queue exists, is ENABLED and VALID, and has compute environments."""
    check = f"queue {name}"
    if queue is None:
        return failed(
            check,
            f"Job queue '{name}' does not exist in region {region or '?'}. Check the name and "
            "the region, or create the queues with `awsbatch-mpi setup`.",
        )
    state, status = queue.get("state"), queue.get("status")
    if state != "ENABLED":
        return failed(
            check,
            f"Job queue '{name}' is {state}: it accepts no jobs. Enable it with `aws batch "
            f"update-job-queue --job-queue {name} --state ENABLED`.",
        )
    if status != "VALID":
        reason = queue.get("statusReason") or "no reason given"
        return failed(
            check,
            f"Job queue '{name}' is {status} ({reason}). Fix the queue's compute "
            "environments, or recreate the queue.",
        )
    if not queue.get("computeEnvironmentOrder"):
        return failed(
            check,
            f"Job queue '{name}' has no compute environment, so its jobs can never run. Attach "
            "one with `aws batch update-job-queue --compute-environment-order ...`.",
        )
    return passed(check, "The queue is ENABLED and VALID.")


def check_compute_environment(env: Mapping[str, Any]) -> list[CheckResult]:
    """The environment is VALID, ENABLED and may start instances (maxvCpus > 0)."""
    name = env.get("computeEnvironmentName", env.get("computeEnvironmentArn", "?"))
    check = f"compute environment {name}"
    results: list[CheckResult] = []
    status, state = env.get("status"), env.get("state")
    if status != "VALID":
        reason = env.get("statusReason") or "no reason given"
        results.append(
            failed(
                check,
                f"Compute environment '{name}' is {status} ({reason}). Fix what the reason "
                "names (often the instance role, the subnets or the service role) and update "
                "or recreate the environment.",
            )
        )
    if state != "ENABLED":
        results.append(
            failed(
                check,
                f"Compute environment '{name}' is {state}: it starts no instances. Enable it "
                f"with `aws batch update-compute-environment --compute-environment {name} "
                "--state ENABLED`.",
            )
        )
    resources = env.get("computeResources")
    if env.get("type") == "UNMANAGED" or resources is None:
        results.append(
            warned(
                check,
                f"Compute environment '{name}' is UNMANAGED: Batch only uses the instances you "
                "register in its ECS cluster; make sure some are running.",
            )
        )
    elif int(resources.get("maxvCpus", 0)) <= 0:
        results.append(
            failed(
                check,
                f"Compute environment '{name}' has maxvCpus "
                f"{resources.get('maxvCpus', 0)}: no job can ever start. Raise it with `aws "
                f"batch update-compute-environment --compute-environment {name} "
                "--compute-resources maxvCpus=<n>`.",
            )
        )
    if not results:
        results.append(
            passed(
                check,
                f"The compute environment is ENABLED and VALID ({capacity_type(env)}, up to "
                f"{resources.get('maxvCpus')} vCPUs).",
            )
        )
    return results


# Instance types ---------------------------------------------------------------------------

_GPU_FAMILY = re.compile(r"^(p\d|g\d|gr\d)")


def is_gpu_family(entry: str) -> bool:
    """p3, p4d, g4dn, g5, g6e, gr6 ... (NVIDIA GPU families; inf/trn are not GPUs)."""
    return bool(_GPU_FAMILY.match(entry.split(".")[0]))


def instance_patterns(env: Mapping[str, Any]) -> list[str]:
    """DescribeInstanceTypes filter values for an environment's `instanceTypes`."""
    patterns: list[str] = []
    for entry in (env.get("computeResources") or {}).get("instanceTypes", []):
        for item in BUNDLES.get(entry, (entry,)):
            patterns.append(item if "." in item else f"{item}.*")
    return sorted(set(patterns))


@dataclass(frozen=True)
class InstanceShape:
    name: str
    vcpus: int
    memory_mib: int
    gpus: int = 0
    # Physical cores and threads per core (DescribeInstanceTypes' defaults); 0 when unknown.
    cores: int = 0
    threads_per_core: int = 0
    efa: bool = False


def shapes_from(instance_types: Iterable[Mapping[str, Any]]) -> dict[str, InstanceShape]:
    """DescribeInstanceTypes items → name → shape."""
    shapes = {}
    for item in instance_types:
        gpus = sum(int(g.get("Count", 0)) for g in (item.get("GpuInfo") or {}).get("Gpus", []))
        shapes[item["InstanceType"]] = InstanceShape(
            name=item["InstanceType"],
            vcpus=int(item["VCpuInfo"]["DefaultVCpus"]),
            memory_mib=int(item["MemoryInfo"]["SizeInMiB"]),
            gpus=gpus,
            cores=int(item["VCpuInfo"].get("DefaultCores", 0)),
            threads_per_core=int(item["VCpuInfo"].get("DefaultThreadsPerCore", 0)),
            efa=bool((item.get("NetworkInfo") or {}).get("EfaSupported", False)),
        )
    return shapes


def _matches(pattern: str, name: str) -> bool:
    return name.startswith(pattern[:-1]) if pattern.endswith("*") else name == pattern


@dataclass(frozen=True)
class EnvCapacity:
    """What one compute environment can ever run."""

    name: str
    kind: str  # EC2, SPOT, FARGATE, FARGATE_SPOT, UNMANAGED
    max_vcpus: int
    usable: bool
    instances: tuple[InstanceShape, ...] = ()
    bundle: bool = False  # instance types chosen by Batch ("optimal", "default_*")
    instances_known: bool = True  # False when the instance types could not be read


def capacity_of(
    env: Mapping[str, Any], catalog: Mapping[str, InstanceShape], known: bool = True
) -> EnvCapacity:
    resources = env.get("computeResources") or {}
    patterns = instance_patterns(env)
    shapes = tuple(
        sorted(
            (s for s in catalog.values() if any(_matches(p, s.name) for p in patterns)),
            key=lambda s: s.name,
        )
    )
    return EnvCapacity(
        name=str(env.get("computeEnvironmentName", "?")),
        kind=capacity_type(env),
        max_vcpus=int(resources.get("maxvCpus", 0)),
        usable=env.get("state") == "ENABLED" and env.get("status") == "VALID",
        instances=shapes,
        bundle=any(t in BUNDLES for t in resources.get("instanceTypes", [])),
        instances_known=known,
    )


# The OS and the ECS agent keep part of every instance's memory for themselves.
MEMORY_HEADROOM = 0.05


@dataclass(frozen=True)
class Demand:
    """What one job (per node for MPI jobs) asks of a queue."""

    rule: str
    queue: str
    vcpus: float
    memory_mib: int
    gpus: int = 0
    nodes: int = 1

    def describe(self) -> str:
        size = f"{self.vcpus:g} vCPU, {self.memory_mib} MiB"
        if self.gpus:
            size += f", {self.gpus} GPU"
        if self.nodes > 1:
            return f"{self.nodes} nodes x ({size})"
        return size


def _fit_on(demand: Demand, env: EnvCapacity) -> tuple[str, str]:
    """('fits' | 'tight' | 'no', why) for one environment."""
    total = demand.vcpus * demand.nodes
    if not env.usable:
        return "no", f"'{env.name}' is not ENABLED and VALID"
    if env.kind == "UNMANAGED":
        return "fits", f"in unmanaged '{env.name}', not checked"
    if total > env.max_vcpus:
        return "no", f"'{env.name}' allows at most {env.max_vcpus} vCPUs in total"
    if env.kind in ("FARGATE", "FARGATE_SPOT"):
        if demand.gpus:
            return "no", f"'{env.name}' runs on Fargate, which has no GPUs"
        return "fits", f"on Fargate in '{env.name}'"
    if not env.instances_known:
        return "fits", f"within the maxvCpus of '{env.name}'; instance types not checked"
    if not env.instances:
        return "no", f"no instance type of '{env.name}' is known in this region"
    candidates = [s for s in env.instances if s.vcpus >= demand.vcpus and s.gpus >= demand.gpus]
    if not candidates:
        biggest = max(env.instances, key=lambda s: (s.gpus, s.vcpus))
        what = "GPUs" if demand.gpus and biggest.gpus < demand.gpus else "vCPUs"
        return "no", (
            f"the largest instance type of '{env.name}' ({biggest.name}: {biggest.vcpus} vCPU, "
            f"{biggest.gpus} GPU) has too few {what}"
        )
    roomy = [s for s in candidates if s.memory_mib * (1 - MEMORY_HEADROOM) >= demand.memory_mib]
    if roomy:
        best = min(roomy, key=lambda s: (s.vcpus, s.memory_mib))
        return "fits", f"on {best.name} in '{env.name}'"
    exact = [s for s in candidates if s.memory_mib >= demand.memory_mib]
    if exact:
        best = min(exact, key=lambda s: s.memory_mib)
        return "tight", (
            f"needs nearly all of the {best.memory_mib} MiB of {best.name} in '{env.name}', "
            "but the OS and the ECS agent keep some memory"
        )
    most = max(c.memory_mib for c in candidates)
    return "no", (
        f"no instance type of '{env.name}' with enough vCPUs has {demand.memory_mib} MiB "
        f"(at most {most} MiB)"
    )


def check_demand(demand: Demand, envs: Sequence[EnvCapacity], jobs: int = 1) -> CheckResult:
    """Can some compute environment of the queue ever run this job? Else it sits RUNNABLE."""
    check = f"rule {demand.rule}"
    count = f"All {jobs} jobs" if jobs != 1 else "Its job"
    if not envs:
        return failed(
            check,
            f"Queue '{demand.queue}' has no compute environment, so {count.lower()} "
            f"({demand.describe()}) can never run. Attach one to the queue.",
        )
    outcomes = [_fit_on(demand, env) for env in envs]
    bundled = any(env.bundle for env in envs)
    for verdict, why in outcomes:
        if verdict == "fits":
            note = (
                " (instance types chosen by Batch, checked against its documented families)"
                if bundled
                else ""
            )
            return passed(
                check,
                f"{count} ({demand.describe()}) can run on queue '{demand.queue}' ({why}){note}.",
            )
    for verdict, why in outcomes:
        if verdict == "tight":
            return warned(
                check,
                f"{count} ({demand.describe()}) on queue '{demand.queue}' {why}; it may stay "
                "RUNNABLE. Lower mem_mb a little or allow a larger instance type.",
            )
    reasons = "; ".join(why for _, why in outcomes)
    return failed(
        check,
        f"{count} ({demand.describe()}) can never run on queue '{demand.queue}' and would sit "
        f"RUNNABLE forever: {reasons}. Lower the rule's resources, or allow larger instance "
        "types / more vCPUs in the compute environment, or route the rule to another queue.",
    )


# GPU and multi-node queues -----------------------------------------------------------------


def check_gpu_queue(name: str, envs: Sequence[Mapping[str, Any]]) -> CheckResult:
    """The GPU queue can start GPU instances (p*, g* families)."""
    check = f"gpu queue {name}"
    gpu, bundles, fargate, others = [], [], [], []
    for env in envs:
        env_name = env.get("computeEnvironmentName", "?")
        kind = capacity_type(env)
        types = (env.get("computeResources") or {}).get("instanceTypes", [])
        if kind in ("FARGATE", "FARGATE_SPOT"):
            fargate.append(env_name)
        elif any(is_gpu_family(t) for t in types):
            gpu.append(env_name)
        elif any(t in BUNDLES for t in types):
            bundles.append(env_name)
        else:
            others.append(f"{env_name} ({', '.join(types) or 'no instance types'})")
    if gpu:
        return passed(check, f"GPU instance types are allowed in {', '.join(gpu)}.")
    if bundles:
        return warned(
            check,
            f"{', '.join(bundles)} let Batch choose instance types ('optimal'/'default_*'), "
            "whose documented families (m6i, c6i, r6i, c7i) have no GPUs, so GPU jobs may "
            "stay RUNNABLE. List GPU families (e.g. g5, g6, p4d) in the compute environment.",
        )
    if fargate:
        return failed(
            check,
            f"Queue '{name}' runs on Fargate ({', '.join(fargate)}), which has no GPUs. Use "
            "an EC2 compute environment with GPU instance types (g5, g6, p4d, ...).",
        )
    return failed(
        check,
        f"No compute environment of queue '{name}' allows GPU instance types "
        f"({'; '.join(others) or 'none attached'}), so GPU jobs would sit RUNNABLE forever. "
        "Add GPU families (e.g. g5, g6, p4d) to its compute environment.",
    )


UNKNOWN = "?"


def check_multinode_queue(
    name: str,
    envs: Sequence[Mapping[str, Any]],
    placement_groups: Mapping[str, str | None],
) -> list[CheckResult]:
    """EC2 on-demand (not Spot, not Fargate, managed) and in a cluster placement group.

    `placement_groups` maps an environment name to its placement group: from
    `computeResources.placementGroup`, else from its launch template, None when it has
    none and `UNKNOWN` when the launch template could not be read.
    """
    check = f"multinode queue {name}"
    results: list[CheckResult] = []
    bad = [
        f"{e.get('computeEnvironmentName', '?')} ({capacity_type(e)})"
        for e in envs
        if capacity_type(e) != "EC2"
    ]
    if bad or not envs:
        results.append(
            failed(
                check,
                f"Multi-node parallel jobs run only on managed EC2 on-demand compute "
                f"environments, and queue '{name}' uses {', '.join(bad) or 'none'}. Point "
                "--awsbatch-mpi-multinode-job-queue at an EC2 on-demand queue (see "
                "`awsbatch-mpi setup`).",
            )
        )
    else:
        results.append(
            passed(check, f"Queue '{name}' runs on EC2 on-demand capacity, as MPI jobs need.")
        )
    for env in envs:
        env_name = str(env.get("computeEnvironmentName", "?"))
        group = placement_groups.get(env_name)
        if group == UNKNOWN:
            results.append(
                warned(
                    f"placement group {env_name}",
                    f"The launch template of '{env_name}' could not be read, so its placement "
                    "group is unknown. Make sure MPI nodes share a cluster placement group "
                    "(low latency between nodes).",
                )
            )
        elif group:
            results.append(
                passed(
                    f"placement group {env_name}",
                    f"'{env_name}' launches instances in placement group '{group}'.",
                )
            )
        else:
            results.append(
                warned(
                    f"placement group {env_name}",
                    f"'{env_name}' has no placement group: MPI nodes may land far apart and "
                    "communicate slowly. Create a cluster placement group and set it in the "
                    "compute environment (placementGroup) or its launch template.",
                )
            )
    return results


def threads_per_core_from_launch_template(version: Mapping[str, Any] | None) -> int | None:
    """`CpuOptions.ThreadsPerCore` of a launch template version (1: hyper-threading off)."""
    data = (version or {}).get("LaunchTemplateData") or {}
    threads = (data.get("CpuOptions") or {}).get("ThreadsPerCore")
    return int(threads) if threads else None


def check_cores(
    name: str, envs: Sequence[EnvCapacity], threads_per_core: Mapping[str, int | None]
) -> CheckResult:
    """Cores and vCPUs per node of an MPI queue's instance types, so rules can be sized.

    `threads_per_core` maps an environment to its launch template's ThreadsPerCore (None:
    the instance type's default). With one thread per core Batch sees one vCPU per core.
    """
    check = f"cores per node {name}"
    parts = []
    for env in envs:
        override = threads_per_core.get(env.name)
        sizes = []
        for shape in env.instances:
            if not shape.cores:
                continue
            threads = override or shape.threads_per_core or 1
            sizes.append(f"{shape.name} {shape.cores} cores x {threads} thread(s)")
        if sizes:
            mode = "one thread per core" if override == 1 else "instance default threads"
            parts.append(f"'{env.name}' ({mode}): " + ", ".join(sizes))
    if not parts:
        return warned(
            check,
            f"The instance types of queue '{name}' could not be read, so cores per node are "
            "unknown. Allow ec2:DescribeInstanceTypes.",
        )
    return passed(
        check,
        "; ".join(parts) + ". Size MPI rules to the cores (tasks_per_node x cpus_per_task); "
        "`awsbatch-mpi setup --mpi-one-thread-per-core` turns hyper-threading off.",
    )


def check_efa(rule: str, queue: str, envs: Sequence[EnvCapacity]) -> CheckResult:
    """A rule with awsbatch_efa needs every instance type its queue may launch to have EFA."""
    check = f"rule {rule} EFA"
    shapes = [shape for env in envs for shape in env.instances]
    if not shapes:
        return warned(
            check,
            f"Rule '{rule}' asks for EFA, but the instance types of queue '{queue}' could not "
            "be read. Allow ec2:DescribeInstanceTypes, or check them yourself "
            "(network-info.efa-supported).",
        )
    without = sorted({shape.name for shape in shapes if not shape.efa})
    if without:
        return failed(
            check,
            f"Rule '{rule}' asks for EFA (awsbatch_efa), but queue '{queue}' may launch "
            f"{', '.join(without)}, which have no EFA. Limit the compute environment to "
            "EFA-capable types (e.g. c5n.18xlarge, c6in.32xlarge, hpc7g, p4d) or drop "
            "awsbatch_efa.",
        )
    return passed(
        check,
        f"Every instance type of queue '{queue}' supports EFA "
        f"({', '.join(sorted({s.name for s in shapes}))}).",
    )


def placement_from_launch_template(version: Mapping[str, Any] | None) -> str | None:
    """The placement group named in a DescribeLaunchTemplateVersions item, if any."""
    if not version:
        return None
    data = version.get("LaunchTemplateData") or {}
    return (data.get("Placement") or {}).get("GroupName") or None


# IAM and S3 --------------------------------------------------------------------------------


def _trust_document(role: Mapping[str, Any]) -> dict[str, Any]:
    document = role.get("AssumeRolePolicyDocument") or {}
    if isinstance(document, str):
        document = json.loads(urllib.parse.unquote(document))
    return document


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def trusts_service(role: Mapping[str, Any], service: str) -> bool:
    for statement in _as_list(_trust_document(role).get("Statement")):
        if statement.get("Effect") != "Allow":
            continue
        actions = _as_list(statement.get("Action"))
        if not any(a in ("sts:AssumeRole", "sts:*", "*") for a in actions):
            continue
        principal = statement.get("Principal") or {}
        if isinstance(principal, dict) and service in _as_list(principal.get("Service")):
            return True
    return False


def check_job_role(arn: str, role: Mapping[str, Any] | None, error: str | None) -> CheckResult:
    """The job role exists and ECS tasks (the Batch containers) may assume it."""
    check = "job role"
    if role is None:
        return failed(
            check,
            f"The job role {arn} could not be read ({error or 'not found'}). Check the ARN "
            "(--awsbatch-mpi-job-role-arn), or create the role with `awsbatch-mpi setup`.",
        )
    if not trusts_service(role, "ecs-tasks.amazonaws.com"):
        return failed(
            check,
            f"The job role {arn} does not trust ecs-tasks.amazonaws.com, so Batch containers "
            "cannot assume it and get no credentials. Add a trust statement allowing "
            "sts:AssumeRole for the service principal ecs-tasks.amazonaws.com.",
        )
    return passed(check, f"The job role {arn} exists and trusts ecs-tasks.amazonaws.com.")


def check_s3_prefix(uri: str, error: str | None) -> CheckResult:
    check = "s3 prefix"
    if error:
        return failed(
            check,
            f"Could not write and delete a test object under {uri} ({error}). Check that the "
            "bucket exists in this account and that you may s3:PutObject and s3:DeleteObject "
            "there.",
        )
    return passed(check, f"{uri} is writable (a test object was written and deleted).")


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/prefix` → (bucket, prefix without slashes at the ends)."""
    if not uri.startswith("s3://") or len(uri) <= 5:
        raise ValueError(f"'{uri}' is not an S3 URI; write it as s3://bucket/prefix.")
    bucket, _, prefix = uri[5:].partition("/")
    if not bucket:
        raise ValueError(f"'{uri}' names no bucket; write it as s3://bucket/prefix.")
    return bucket, prefix.strip("/")
