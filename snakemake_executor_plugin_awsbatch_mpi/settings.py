"""Command-line settings (`--awsbatch-mpi-<name>`, env `SNAKEMAKE_AWSBATCH_MPI_<NAME>`).

No `from __future__ import annotations` here: Snakemake inspects the field types at run time
(a `bool` field must really be `bool`). Bool fields default to False (a True default breaks
Snakemake's argument parsing).
"""

import math
from dataclasses import dataclass, field
from typing import Any, Optional

from snakemake_interface_common.exceptions import WorkflowError
from snakemake_interface_executor_plugins.settings import (
    CommonSettings,
    ExecutorSettingsBase,
)

from .core.anyimage import RUNTIME_VOLUME_FORMS, parse_runtime_volume, runtime_volume_text
from .core.jobdef import DEFAULT_LOG_GROUP
from .core.mounts import VOLUME_FORMS, parse_volumes
from .core.request import (
    DEFAULT_BATCH_ATTEMPTS,
    DEFAULT_JOIN_TIMEOUT_SECONDS,
    DEFAULT_MEMORY_MIB,
)
from .core.tags import MAX_TAGS, parse_tags, secret_problem, tag_problem


def _unparse_mapping(value: dict | None) -> str:
    return " ".join(f"{k}={v}" for k, v in (value or {}).items())


def _parse_mapping(text: str, flag: str, example: str) -> dict[str, str]:
    """`KEY=VALUE ...` of a mapping flag; a malformed item ends the run with one sentence.

    Snakemake calls these while it parses the command line and prints a WorkflowError as a
    message, any other exception as a traceback.
    """
    try:
        return parse_tags(text, flag)
    except ValueError as err:
        raise WorkflowError(
            f"{err} Write each item as {example}, separated by spaces or commas. Nothing was "
            "submitted."
        ) from None


def _parse_gpu_queues(text: str) -> dict[str, str]:
    return _parse_mapping(text, "--awsbatch-mpi-gpu-queues", "MODEL=QUEUE (a100=gpu-a100)")


def _parse_tags(text: str) -> dict[str, str]:
    return _parse_mapping(text, "--awsbatch-mpi-tags", "KEY=VALUE (team=genomics)")


def _parse_secrets(text: str) -> dict[str, str]:
    # The ARNs are checked by check_settings, whose refusal is one sentence, not a traceback.
    return _parse_mapping(text, "--awsbatch-mpi-secrets", "NAME=ARN (TOKEN=arn:aws:ssm:...)")


def _parse_volumes(text: str) -> list:
    try:
        return list(parse_volumes(text))
    except ValueError as err:
        raise WorkflowError(
            f"--awsbatch-mpi-volumes: {err}; write each volume as {VOLUME_FORMS}, separated "
            "by spaces or commas. Nothing was submitted."
        ) from None


def _parse_runtime_volume(text: str):
    try:
        return parse_runtime_volume(text)
    except ValueError as err:
        raise WorkflowError(
            f"--awsbatch-mpi-runtime-volume: {err}. Nothing was submitted."
        ) from None


def _parse_rule_list(text: str) -> list[str]:
    return [rule for rule in text.replace(",", " ").split() if rule]


@dataclass
class ExecutorSettings(ExecutorSettingsBase):
    job_queue: Optional[str] = field(
        default=None,
        metadata={
            "metavar": "QUEUE",
            "help": "AWS Batch job queue for ordinary jobs (name or ARN).",
            "env_var": True,
            "required": True,
        },
    )
    region: Optional[str] = field(
        default=None,
        metadata={
            "metavar": "REGION",
            "help": "AWS region of the queues. Default: boto3's chain (AWS_REGION, "
            "AWS_DEFAULT_REGION, ~/.aws/config).",
            "env_var": True,
        },
    )
    job_role_arn: Optional[str] = field(
        default=None,
        metadata={
            "metavar": "ARN",
            "help": "IAM role the jobs run as (S3 access for staging comes from it). "
            "Optional: without it jobs get the compute environment's default permissions.",
            "env_var": True,
        },
    )
    execution_role_arn: Optional[str] = field(
        default=None,
        metadata={
            "metavar": "ARN",
            "help": "ECS task execution role, required for Fargate queues (image pull, logs).",
            "env_var": True,
        },
    )
    gpu_job_queue: Optional[str] = field(
        default=None,
        metadata={
            "metavar": "QUEUE",
            "help": "Job queue for jobs with resources gpu>0 (else they use --job-queue).",
            "env_var": True,
        },
    )
    multinode_job_queue: Optional[str] = field(
        default=None,
        metadata={
            "metavar": "QUEUE",
            "help": "Job queue for multi-node MPI jobs (EC2 on-demand, not Spot or Fargate).",
            "env_var": True,
        },
    )
    fallback_job_queue: Optional[str] = field(
        default=None,
        metadata={
            "metavar": "QUEUE",
            "help": "On-demand job queue for a job whose last Batch attempt lost its Spot "
            "instance: such a job is submitted once more there (a rule's "
            "awsbatch_fallback_queue overrides it). Other failures are not resubmitted.",
            "env_var": True,
        },
    )
    gpu_queues: Optional[dict] = field(
        default=None,
        metadata={
            "metavar": "'MODEL=QUEUE ...'",
            "help": "Route rules by resources gpu_model: 'MODEL=QUEUE ...', "
            "e.g. 'a100=gpu-a100-queue t4=gpu-t4-queue'.",
            "env_var": True,
            "parse_func": _parse_gpu_queues,
            "unparse_func": _unparse_mapping,
        },
    )
    tags: Optional[dict] = field(
        default=None,
        metadata={
            "metavar": "'KEY=VALUE ...'",
            "help": "Tags for every job, 'KEY=VALUE ...' (added to the run id, rule and "
            "workflow tags; propagated to the ECS tasks).",
            "env_var": True,
            "parse_func": _parse_tags,
            "unparse_func": _unparse_mapping,
        },
    )
    log_group: str = field(
        default=DEFAULT_LOG_GROUP,
        metadata={
            "metavar": "NAME",
            "help": "CloudWatch log group of the jobs (read only for failed jobs).",
            "env_var": True,
        },
    )
    default_memory_mib: int = field(
        default=DEFAULT_MEMORY_MIB,
        metadata={
            "metavar": "MIB",
            "help": "Memory (MiB) for jobs whose rule declares no mem_mb/mem_mib.",
            "type": int,
            "env_var": True,
        },
    )
    api_calls_per_second: float = field(
        default=10.0,
        metadata={
            "metavar": "N",
            "help": "Budget of Batch API calls per second for this client's submissions and "
            "other calls; status checks follow --max-status-checks-per-second (the "
            "account's SubmitJob quota of 50/s is shared with everything else you run).",
            "type": float,
            "env_var": True,
        },
    )
    log_tail_lines: int = field(
        default=40,
        metadata={
            "metavar": "N",
            "help": "Lines of CloudWatch log shown for a failed job.",
            "type": int,
            "env_var": True,
        },
    )
    array_jobs: Optional[list] = field(
        default=None,
        metadata={
            "metavar": "all|RULE,...",
            "help": "Submit same-rule jobs that become ready together as one Batch array "
            "job: 'all' or a comma-separated list of rules.",
            "env_var": True,
            "parse_func": _parse_rule_list,
            "unparse_func": lambda rules: ",".join(rules or []),
        },
    )
    batch_attempts: int = field(
        default=DEFAULT_BATCH_ATTEMPTS,
        metadata={
            "metavar": "N",
            "help": "Attempts AWS Batch makes by itself when the infrastructure fails a job "
            "(Spot reclaim, task failed to start); 1 disables. Failures of the rule itself "
            "are not retried by Batch: use Snakemake's --retries for those.",
            "type": int,
            "env_var": True,
        },
    )
    mpi_join_timeout: int = field(
        default=DEFAULT_JOIN_TIMEOUT_SECONDS,
        metadata={
            "metavar": "SECONDS",
            "help": "Seconds the main node of a multi-node MPI job waits for the other "
            "nodes before failing the job and naming the missing ones.",
            "type": int,
            "env_var": True,
        },
    )
    secrets: Optional[dict] = field(
        default=None,
        metadata={
            "metavar": "NAME=ARN",
            "help": "Secrets for every job, 'NAME=ARN ...': each ARN is a Secrets Manager "
            "secret or an SSM Parameter Store parameter, injected by ECS as variable NAME "
            "when the job starts (needs --awsbatch-mpi-execution-role-arn). A variable "
            "declared with `envvars:` whose name looks secret must be given this way.",
            "env_var": True,
            "parse_func": _parse_secrets,
            "unparse_func": _unparse_mapping,
        },
    )
    volumes: Optional[list] = field(
        default=None,
        metadata={
            "metavar": "'efs:FS_ID[:AP_ID]:/PATH host:/HOST/PATH:/PATH ...'",
            "help": "Shared file systems mounted in every job's container (every node of an "
            "MPI job): an EFS file system (optionally through an access point; encrypted in "
            "transit) or an instance directory such as FSx for Lustre mounted by the launch "
            "template, each at a container path; append ':ro' for read-only. A rule's "
            "resource awsbatch_volumes adds to these.",
            "env_var": True,
            "parse_func": _parse_volumes,
            "unparse_func": lambda volumes: " ".join(str(v) for v in volumes or []),
        },
    )
    runnable_warning: float = field(
        default=10.0,
        metadata={
            "metavar": "MINUTES",
            "help": "Warn (once per queue, again only when Batch's reason changes) when a job "
            "has been RUNNABLE this many minutes, with what Batch says about the queue's "
            "compute environments; jobs are never cancelled. 0 turns the warning off.",
            "type": float,
            "env_var": True,
        },
    )
    assign_public_ip: bool = field(
        default=False,
        metadata={
            "help": "Give Fargate jobs a public IP (needed in public subnets without NAT).",
            "env_var": True,
        },
    )
    runtime_volume: Optional[object] = field(
        default=None,
        metadata={
            "metavar": "'efs:FS_ID[:AP_ID]' | 'host:/PATH'",
            "help": "The file system holding the plugin's self-contained runtime (installed by "
            "`awsbatch-mpi runtime install`), mounted read-only in jobs whose image has no "
            "Snakemake: rules whose container: directive names a tool image run in that image "
            f"with Snakemake from the runtime. Write {RUNTIME_VOLUME_FORMS}.",
            "env_var": True,
            "parse_func": _parse_runtime_volume,
            "unparse_func": runtime_volume_text,
        },
    )
    snakemake_images: Optional[list] = field(
        default=None,
        metadata={
            "metavar": "IMAGE[,IMAGE...]",
            "parse_func": _parse_rule_list,
            "unparse_func": lambda images: ",".join(images or []),
            "help": "Images a rule's container: directive may name that already hold Snakemake "
            "and this plugin (exact references, or prefixes ending in '*'): they run as "
            "--container-image does, without the runtime. The plugin's own images always do.",
            "env_var": True,
        },
    )


common_settings = CommonSettings(
    non_local_exec=True,
    implies_no_shared_fs=True,
    job_deploy_sources=True,
    # Exported variables would end up in the command line, secrets included: the executor
    # passes a filtered environment through containerOverrides instead.
    pass_envvar_declarations_to_cmd=False,
    # The job image ships the S3 storage plugin; pip-installing it unpinned in every job is
    # slow and not reproducible.
    auto_deploy_default_storage_provider=False,
    init_seconds_before_status_checks=1,
    pass_default_storage_provider_args=True,
    pass_default_resources_args=True,
)


# Run tags the executor adds to every job (snakemake-run-id, -rule, -workflow).
RUN_TAG_COUNT = 3
# (field, lowest, highest, what the range means) for every numeric setting.
RANGES: tuple[tuple[str, float, float, str], ...] = (
    ("api_calls_per_second", 0.5, 50, "AWS's SubmitJob quota is 50 per second"),
    ("batch_attempts", 1, 10, "AWS Batch allows 1 to 10 attempts"),
    ("default_memory_mib", 4, 24 * 1024 * 1024, "Batch's minimum is 4 MiB"),
    ("log_tail_lines", 1, 10_000, "CloudWatch returns at most 10,000 lines per call"),
    ("mpi_join_timeout", 1, 86_400, "seconds, at most a day"),
    ("runnable_warning", 0, 10_080, "minutes, at most a week; 0 turns the warning off"),
)


class SettingsError(ValueError):
    """An executor setting is out of range; the message is one sentence naming the flag."""


def flag_of(name: str) -> str:
    return "--awsbatch-mpi-" + name.replace("_", "-")


def check_settings(settings: Any) -> None:
    """Refuse out-of-range settings before anything is uploaded or submitted.

    Called first by the executor and by `awsbatch-mpi plan`/`doctor`. Raises `SettingsError`
    with one sentence: the flag, the value, the allowed range.
    """
    for name, low, high, why in RANGES:
        value = getattr(settings, name, None)
        if value is None:
            continue
        number = float(value) if isinstance(value, int | float) and not isinstance(
            value, bool
        ) else math.nan
        if not low <= number <= high:  # also refuses NaN
            shown = f"{value:g}" if isinstance(value, float) else repr(value)
            raise SettingsError(
                f"{flag_of(name)} is {shown}; allowed are {low:g} to {high:g} ({why}). "
                "Nothing was submitted."
            )
    tags = getattr(settings, "tags", None) or {}
    # A job resubmitted to the fallback queue carries one more tag (snakemake-fallback-of).
    run_tags = RUN_TAG_COUNT + (1 if getattr(settings, "fallback_job_queue", None) else 0)
    if len(tags) > MAX_TAGS - run_tags:
        raise SettingsError(
            f"--awsbatch-mpi-tags sets {len(tags)} tags; allowed are at most "
            f"{MAX_TAGS - run_tags} (Batch allows {MAX_TAGS} per job and the plugin adds "
            f"{run_tags} run tags). Nothing was submitted."
        )
    for key, value in tags.items():
        problem = tag_problem(str(key), str(value))
        if problem:
            raise SettingsError(
                f"--awsbatch-mpi-tags: {problem}. Change the tag. Nothing was submitted."
            )
    for name, arn in (getattr(settings, "secrets", None) or {}).items():
        problem = secret_problem(str(name), str(arn))
        if problem:
            raise SettingsError(f"--awsbatch-mpi-secrets: {problem}. Nothing was submitted.")
