"""The CloudFormation stack of `awsbatch-mpi setup`: parameters, failures, outputs (pure).

The template (`template.yaml`, shipped in the package) creates a CPU queue (Spot by default,
with an on-demand fallback queue for Spot reclaims), a GPU queue and a multi-node MPI queue
with their compute environments, the job role, the instance role, a log group and optionally
a VPC and an EFS file system. This module turns
command-line options into the stack's parameters and the stack's events and outputs into
messages; `aws_shell.py` makes the calls.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

TEMPLATE_FILE = "template.yaml"
STACK_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,127}$")
BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
PREFIX = re.compile(r"^[A-Za-z0-9!_.*'()-]+(/[A-Za-z0-9!_.*'()-]+)*$")
# Queue names are "<stack>-cpu" etc. and must fit Batch's 128 characters.
MAX_STACK_NAME = 120
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1827, 3653)
CAPABILITIES = ["CAPABILITY_IAM"]
# An instance's root volume cannot be smaller than its AMI's snapshot (30 GiB for the
# ECS-optimized AMIs); gp3 volumes hold at most 16 TiB.
MIN_ROOT_VOLUME_GIB = 30
MAX_ROOT_VOLUME_GIB = 16384


def template_body() -> str:
    """The CloudFormation template shipped with the package."""
    return resources.files(__package__).joinpath(TEMPLATE_FILE).read_text(encoding="utf-8")


@dataclass(frozen=True)
class StackOptions:
    """What `awsbatch-mpi setup` was asked for; every template parameter has a field."""

    stack_name: str
    bucket: str
    prefix: str = "snakemake"
    on_demand: bool = False
    cpu_instance_types: tuple[str, ...] = ("c6i", "m6i", "r6i")
    gpu_instance_types: tuple[str, ...] = ("g4dn", "g5")
    mpi_instance_types: tuple[str, ...] = ("c5n",)
    cpu_max_vcpus: int = 256
    gpu_max_vcpus: int = 64
    mpi_max_vcpus: int = 256
    runnable_timeout_seconds: int = 3600
    efs: bool = False
    # MPI instances with an Elastic Fabric Adapter, and with hyper-threading off.
    mpi_efa: bool = False
    mpi_one_thread_per_core: bool = False
    # The root volume every job of an instance shares (the AMI alone gives 30 GiB).
    root_volume_gib: int = 100
    # Private subnets behind a NAT gateway (only in the VPC setup creates; costs money).
    nat_gateway: bool = False
    vpc_id: str = ""
    subnet_ids: tuple[str, ...] = ()
    security_group_id: str = ""
    log_retention_days: int = 30
    service_role_arn: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)


# Families whose larger sizes have an Elastic Fabric Adapter (a small table on purpose: `doctor`
# checks each instance type against DescribeInstanceTypes' EfaSupported).
EFA_FAMILIES = frozenset(
    {
        "c5n", "c6a", "c6gn", "c6i", "c6id", "c6in", "c7a", "c7g", "c7gd", "c7gn", "c7i",
        "g4dn", "g5", "g6", "g6e", "hpc6a", "hpc6id", "hpc7a", "hpc7g", "i3en", "i4i",
        "m5dn", "m5n", "m6a", "m6i", "m6id", "m6idn", "m6in", "m7a", "m7g", "m7i",
        "p3dn", "p4d", "p4de", "p5", "p5e", "r5dn", "r5n", "r6a", "r6i", "r6id", "r6idn",
        "r6in", "r7a", "r7g", "r7i", "r7iz", "trn1", "trn1n", "x2idn", "x2iedn",
    }
)


def efa_problem(instance_types: Sequence[str]) -> str | None:
    """EFA needs exact instance types of EFA families (small sizes of a family have none)."""
    bad = [t for t in instance_types if "." not in t or t.split(".")[0] not in EFA_FAMILIES]
    if not bad:
        return None
    return (
        f"--mpi-efa needs --mpi-instance-types to name EFA-capable instance types exactly "
        f"(e.g. c5n.18xlarge,c6in.32xlarge,hpc7g.16xlarge), not {', '.join(bad)}: Batch "
        "could pick a size without EFA and the instance would fail to launch."
    )


def split_list(text: str) -> tuple[str, ...]:
    """'a, b c' → ('a', 'b', 'c')."""
    return tuple(item for item in re.split(r"[,\s]+", text.strip()) if item)


def validate_options(options: StackOptions) -> list[str]:
    """Problems CloudFormation would only report after a slow rollback; empty when fine."""
    problems = []
    if not STACK_NAME.match(options.stack_name) or len(options.stack_name) > MAX_STACK_NAME:
        problems.append(
            f"Stack name '{options.stack_name}' is not valid: start with a letter, use letters, "
            f"digits and hyphens, at most {MAX_STACK_NAME} characters."
        )
    if not BUCKET_NAME.match(options.bucket):
        problems.append(
            f"Bucket name '{options.bucket}' is not valid: 3-63 lowercase letters, digits, dots "
            "and hyphens (give the bucket name only, not s3://...)."
        )
    if not PREFIX.match(options.prefix):
        problems.append(
            f"Prefix '{options.prefix}' is not valid: give a key prefix such as 'snakemake' or "
            "'team/run', without leading or trailing slash."
        )
    if options.vpc_id and not options.subnet_ids:
        problems.append("--vpc-id needs --subnet-ids: name the subnets the instances use.")
    if options.subnet_ids and not options.vpc_id:
        problems.append("--subnet-ids needs --vpc-id: name the VPC the subnets belong to.")
    if options.nat_gateway and options.vpc_id:
        problems.append(
            "--nat-gateway builds private subnets in the VPC that setup creates; setup never "
            "changes a VPC given with --vpc-id. Add a NAT gateway or an S3 gateway endpoint to "
            "your subnets' route tables yourself, then run `awsbatch-mpi doctor` to check them."
        )
    if options.security_group_id and not options.vpc_id:
        problems.append("--security-group-id needs --vpc-id: a security group belongs to one VPC.")
    for label, types in (
        ("--cpu-instance-types", options.cpu_instance_types),
        ("--gpu-instance-types", options.gpu_instance_types),
        ("--mpi-instance-types", options.mpi_instance_types),
    ):
        if not types:
            problems.append(f"{label} is empty: name at least one instance family or type.")
    for label, value in (
        ("--cpu-max-vcpus", options.cpu_max_vcpus),
        ("--gpu-max-vcpus", options.gpu_max_vcpus),
        ("--mpi-max-vcpus", options.mpi_max_vcpus),
    ):
        if value < 1:
            problems.append(f"{label} must be at least 1 (it is {value}).")
    if options.mpi_efa and options.mpi_instance_types:
        problem = efa_problem(options.mpi_instance_types)
        if problem:
            problems.append(problem)
    if not 600 <= options.runnable_timeout_seconds <= 86400:
        problems.append(
            "--runnable-timeout must be between 600 and 86400 seconds (Batch's limits for "
            "cancelling jobs stuck RUNNABLE)."
        )
    if not MIN_ROOT_VOLUME_GIB <= options.root_volume_gib <= MAX_ROOT_VOLUME_GIB:
        problems.append(
            f"--root-volume-gib must be between {MIN_ROOT_VOLUME_GIB} (the size of the "
            f"ECS-optimized AMI's own root volume) and {MAX_ROOT_VOLUME_GIB} (gp3's largest) "
            f"(it is {options.root_volume_gib})."
        )
    if options.log_retention_days not in LOG_RETENTION_DAYS:
        allowed = ", ".join(str(d) for d in LOG_RETENTION_DAYS)
        problems.append(f"--log-retention-days must be one of {allowed}.")
    return problems


def parameters(options: StackOptions) -> dict[str, str]:
    """Every template parameter, explicitly (no reliance on the template's defaults)."""
    return {
        "BucketName": options.bucket,
        "Prefix": options.prefix,
        "CpuCapacity": "ON_DEMAND" if options.on_demand else "SPOT",
        "CpuInstanceTypes": ",".join(options.cpu_instance_types),
        "CpuMaxVcpus": str(options.cpu_max_vcpus),
        "GpuInstanceTypes": ",".join(options.gpu_instance_types),
        "GpuMaxVcpus": str(options.gpu_max_vcpus),
        "MpiInstanceTypes": ",".join(options.mpi_instance_types),
        "MpiMaxVcpus": str(options.mpi_max_vcpus),
        "RunnableTimeoutSeconds": str(options.runnable_timeout_seconds),
        "EnableEfs": "true" if options.efs else "false",
        "MpiEfa": "true" if options.mpi_efa else "false",
        "MpiOneThreadPerCore": "true" if options.mpi_one_thread_per_core else "false",
        "RootVolumeGib": str(options.root_volume_gib),
        "NatGateway": "true" if options.nat_gateway else "false",
        "VpcId": options.vpc_id,
        "SubnetIds": ",".join(options.subnet_ids),
        "SecurityGroupId": options.security_group_id,
        "LogRetentionDays": str(options.log_retention_days),
        "BatchServiceRoleArn": options.service_role_arn,
    }


def cfn_parameters(options: StackOptions) -> list[dict[str, str]]:
    return [
        {"ParameterKey": key, "ParameterValue": value} for key, value in parameters(options).items()
    ]


def cfn_tags(options: StackOptions) -> list[dict[str, str]]:
    tags = {"created-by": "awsbatch-mpi-setup", **options.tags}
    return [{"Key": k, "Value": v} for k, v in sorted(tags.items())]


# Stack progress and failures --------------------------------------------------------------

SUCCESS = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "IMPORT_COMPLETE"}
IN_PROGRESS_SUFFIX = "_IN_PROGRESS"
# Reasons CloudFormation gives to resources it stopped because another one failed.
_SECONDARY = ("Resource creation cancelled", "Resource update cancelled", "cancelled")


def is_finished(status: str) -> bool:
    return not status.endswith(IN_PROGRESS_SUFFIX)


def event_line(event: Mapping[str, Any]) -> str:
    """One progress line for a stack event."""
    line = (
        f"{event.get('ResourceStatus', '?'):<20} {event.get('LogicalResourceId', '?')} "
        f"({event.get('ResourceType', '?')})"
    )
    reason = event.get("ResourceStatusReason")
    if reason and "FAILED" in str(event.get("ResourceStatus", "")):
        line += f": {reason}"
    return line


@dataclass(frozen=True)
class ResourceFailure:
    logical_id: str
    resource_type: str
    status: str
    reason: str


def root_failures(events: Sequence[Mapping[str, Any]]) -> list[ResourceFailure]:
    """The resources that failed on their own (not merely cancelled), oldest first.

    `events` is DescribeStackEvents' list (newest first, as AWS returns it).
    """
    found: list[ResourceFailure] = []
    for event in reversed(list(events)):
        status = str(event.get("ResourceStatus", ""))
        if not status.endswith("_FAILED"):
            continue
        if event.get("ResourceType") == "AWS::CloudFormation::Stack":
            continue
        reason = str(event.get("ResourceStatusReason") or "no reason given")
        if any(reason.startswith(s) for s in _SECONDARY):
            continue
        found.append(
            ResourceFailure(
                logical_id=str(event.get("LogicalResourceId", "?")),
                resource_type=str(event.get("ResourceType", "?")),
                status=status,
                reason=reason,
            )
        )
    return found


def failure_message(
    stack_name: str, stack_status: str, events: Sequence[Mapping[str, Any]], region: str
) -> str:
    """Why the stack failed, naming the failing resource(s), and what to do next."""
    failures = root_failures(events)
    lines = [f"Stack '{stack_name}' failed ({stack_status})."]
    if failures:
        for failure in failures:
            lines.append(
                f"  {failure.logical_id} ({failure.resource_type}) {failure.status}: "
                f"{failure.reason}"
            )
    else:
        stack_reasons = [
            str(e.get("ResourceStatusReason"))
            for e in events
            if e.get("ResourceType") == "AWS::CloudFormation::Stack"
            and e.get("ResourceStatusReason")
        ]
        lines.append(f"  {stack_reasons[0] if stack_reasons else 'No reason was reported.'}")
    lines.append(
        "Fix the cause above (often a missing permission, a service quota, or an instance "
        "type not offered in the region), then delete the stack with `aws cloudformation "
        f"delete-stack --stack-name {stack_name} --region {region}` if it is in "
        "ROLLBACK_COMPLETE, and run setup again."
    )
    return "\n".join(lines)


def outputs_of(stack: Mapping[str, Any]) -> dict[str, str]:
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


OUTPUT_ORDER = (
    "CpuJobQueue",
    "GpuJobQueue",
    "MpiJobQueue",
    "FallbackJobQueue",
    "JobRoleArn",
    "LogGroupName",
    "StoragePrefix",
    "FileSystemId",
)


def render_outputs(stack_name: str, outputs: Mapping[str, str]) -> str:
    """The outputs, then the profile snippet to save as profiles/aws/config.yaml."""
    width = max((len(k) for k in outputs), default=0)
    lines = [f"Stack '{stack_name}' is ready:"]
    keys = [k for k in OUTPUT_ORDER if k in outputs] + sorted(
        k for k in outputs if k not in OUTPUT_ORDER and k != "ProfileSnippet"
    )
    lines += [f"  {k:<{width}}  {outputs[k]}" for k in keys]
    snippet = outputs.get("ProfileSnippet")
    if snippet:
        lines += [
            "",
            "Save this as profiles/aws/config.yaml next to your Snakefile, then run "
            "`snakemake --profile profiles/aws`:",
            "",
            snippet.rstrip("\n"),
        ]
    return "\n".join(lines)


def render_parameters(options: StackOptions) -> str:
    """What `setup --dry-run` shows: the stack's name, parameters and tags."""
    params = parameters(options)
    width = max(len(k) for k in params)
    lines = [f"Stack '{options.stack_name}' would be created with these parameters:"]
    lines += [f"  {k:<{width}}  {v if v != '' else '(empty)'}" for k, v in params.items()]
    lines.append("Tags: " + ", ".join(f"{t['Key']}={t['Value']}" for t in cfn_tags(options)))
    return "\n".join(lines)


def new_events(events: Iterable[Mapping[str, Any]], seen: set[str]) -> list[Mapping[str, Any]]:
    """Events not shown yet (oldest first)."""
    fresh = []
    for event in events:
        event_id = str(event.get("EventId"))
        if event_id in seen:
            continue
        seen.add(event_id)
        fresh.append(event)
    return list(reversed(fresh))
