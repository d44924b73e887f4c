"""What the translation of a job starts from: the job's request and the executor settings that
matter, as value objects decoupled from Snakemake.

The values in `JobRequest.resources` are still as Snakemake passed them; `values` parses them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field

from .spec import Volume

# Used when a job has no memory resource at all (Snakemake without --default-resources).
DEFAULT_MEMORY_MIB = 2048

DEFAULT_JOIN_TIMEOUT_SECONDS = 600

# Attempts Batch makes by itself for infrastructure failures (--awsbatch-mpi-batch-attempts).
DEFAULT_BATCH_ATTEMPTS = 3


@dataclass(frozen=True)
class JobRequest:
    """The parts of a Snakemake job the translation needs, decoupled from Snakemake's classes."""

    rule: str
    threads: int
    resources: Mapping[str, object]
    wildcards: Mapping[str, str] = field(default_factory=dict)
    is_group: bool = False
    # The rule's resources as written in the Snakefile (plain values only), before Snakemake
    # rounds floats and derives mem_mib/disk_mib: errors name what the user wrote.
    written: Mapping[str, object] = field(default_factory=dict)
    # The image the rule's (or the workflow's) `container:` directive names, if any.
    container: str | None = None
    # The names of the resources the user gave (in the rule, callables included, or with
    # --set-resources), unlike the defaults Snakemake gives every job of a cloud run
    # (disk_mb=50000, say): only a disk the user gave is checked against the instances' disk.
    declared: frozenset[str] = frozenset()


@dataclass(frozen=True)
class TranslationSettings:
    """The executor settings that influence translation."""

    job_queue: str
    default_image: str
    gpu_job_queue: str | None = None
    multinode_job_queue: str | None = None
    # On-demand queue for jobs whose Spot host was reclaimed (--awsbatch-mpi-fallback-job-queue).
    fallback_job_queue: str | None = None
    gpu_queues: Mapping[str, str] = field(default_factory=dict)
    job_role_arn: str | None = None
    execution_role_arn: str | None = None
    log_group: str | None = None
    default_memory_mib: int = DEFAULT_MEMORY_MIB
    tags: Mapping[str, str] = field(default_factory=dict)
    assign_public_ip: bool = False
    mpi_join_timeout: int = DEFAULT_JOIN_TIMEOUT_SECONDS
    batch_attempts: int = DEFAULT_BATCH_ATTEMPTS
    # Environment variable name → Secrets Manager / SSM Parameter Store ARN, for every job.
    secrets: Mapping[str, str] = field(default_factory=dict)
    # Shared file systems mounted in every job (--awsbatch-mpi-volumes).
    volumes: tuple[Volume, ...] = ()
    # Rules in any image (core/anyimage.py): the file system holding the runtime
    # (--awsbatch-mpi-runtime-volume), images known to hold Snakemake
    # (--awsbatch-mpi-snakemake-images), and whether Snakemake itself runs the rules'
    # containers (--software-deployment-method apptainer: then `container:` is not the image).
    runtime_volume: Volume | None = None
    snakemake_images: tuple[str, ...] = ()
    snakemake_runs_containers: bool = False


def translation_settings(settings: object, container_image: str) -> TranslationSettings:
    """`TranslationSettings` from the executor's settings (or anything with those attributes).

    Every field of `TranslationSettings` is taken from the attribute of the same name when
    present, so the executor, `plan` and `doctor` translate jobs identically.
    """
    values: dict[str, object] = {"default_image": container_image}
    for name, spec in TranslationSettings.__dataclass_fields__.items():
        if name == "default_image" or not hasattr(settings, name):
            continue
        value = getattr(settings, name)
        if value is None and spec.default_factory is not MISSING:  # unset mappings
            value = spec.default_factory()
        if value is None and name == "snakemake_images":  # an unset list setting
            value = ()
        values[name] = value
    return TranslationSettings(**values)  # type: ignore[arg-type]
