"""Rules in any image: which image a rule's Batch job runs, and how Snakemake gets into it.

Why: a rule that names its tool's image (`container: "docker://quay.io/biocontainers/..."`)
should run in that image on Batch, although it holds no Python and no Snakemake. Such a job
mounts the plugin's self-contained runtime (containers/runtime/collect.py builds it: a Python
with Snakemake, the S3 storage plugin and this plugin, its shared libraries and its own
dynamic loader) read-only at `RUNTIME_MOUNT`, and its command starts Snakemake from there.
Nothing of the image is used but the kernel and `/bin/sh`, so the image's C library (glibc,
musl or none) does not matter.

The runtime lives on a shared file system (EFS on AWS: `awsbatch-mpi runtime install` copies
it there once per plugin version; works on EC2 and Fargate), one directory per version, so
jobs of several plugin versions can share it and an upgrade never changes a running job.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from dataclasses import dataclass

from ..mpi import ENV_LOCAL_FS_ROOT
from .mounts import parse_volume
from .request import JobRequest, TranslationSettings
from .spec import Platform, QueueInfo, ResourceError, Volume, VolumeKind
from .values import flag, given

# The plugin version the runtime belongs to (pyproject.toml's version; a test keeps them
# equal). The runtime of another version is another directory.
RUNTIME_VERSION = "0.1.0"
# Where the runtime's file system is mounted in a job (read-only).
RUNTIME_MOUNT = "/opt/awsbatch-mpi/runtime"
RUNTIME_ROOT = f"{RUNTIME_MOUNT}/{RUNTIME_VERSION}"
RUNTIME_PYTHON = f"{RUNTIME_ROOT}/bin/python"
# Every image has it (the runtime's launcher needs it too); bash is not assumed.
RUNTIME_SHELL = ("/bin/sh", "-c")
# The exit code of a job whose runtime is missing: a shell's "command not found".
EXIT_NO_RUNTIME = 127

# Snakemake's container directive names images as URIs; Batch wants the bare reference.
_SCHEMES = ("docker://",)
# Images known to hold Snakemake: the plugin's own (containers/Dockerfile*).
OWN_IMAGE_NAMES = ("snakemake-awsbatch-mpi",)


class ImageSource:
    """Where a job's image came from (shown by `plan`)."""

    DEFAULT = "default"  # --container-image (the plugin's job image)
    RESOURCE = "awsbatch_image"  # the rule's awsbatch_image resource
    CONTAINER = "container"  # the rule's (or the workflow's) container: directive


@dataclass(frozen=True)
class ImageChoice:
    """The image of a job and whether the runtime is mounted into it."""

    image: str
    source: str
    runtime: bool


def batch_image(container: str) -> str:
    """`docker://quay.io/x/y:1` → `quay.io/x/y:1` (Batch takes registry references)."""
    for scheme in _SCHEMES:
        if container.startswith(scheme):
            return container[len(scheme) :]
    return container


def holds_snakemake(image: str, snakemake_images: tuple[str, ...]) -> bool:
    """Whether an image is known to hold Snakemake and this plugin: the plugin's own images
    (any registry, any tag) or one the user listed (`--awsbatch-mpi-snakemake-images`,
    exact references or prefixes ending in `*`)."""
    name = image.rsplit("/", 1)[-1].split("@", 1)[0].split(":", 1)[0]
    if name in OWN_IMAGE_NAMES:
        return True
    for known in snakemake_images:
        if known.endswith("*") and image.startswith(known[:-1]):
            return True
        if image == known:
            return True
    return False


def choose_image(
    default_image: str,
    awsbatch_image: str | None,
    container: str | None,
    snakemake_runs_containers: bool,
    runtime: bool | None,
    snakemake_images: tuple[str, ...] = (),
) -> ImageChoice:
    """Which image a rule's job runs, and whether it gets the runtime.

    - `awsbatch_image` wins (it must hold Snakemake, as documented), unless the rule says
      `awsbatch_runtime=True`;
    - else the rule's `container:` directive names the image, unless Snakemake itself runs
      containers (`--software-deployment-method apptainer`: the directive is then Snakemake's
      business inside the job); it gets the runtime unless it is known to hold Snakemake or
      the rule says `awsbatch_runtime=False`;
    - else the default image, as before.
    """
    if awsbatch_image:
        return ImageChoice(awsbatch_image, ImageSource.RESOURCE, bool(runtime))
    if container and not snakemake_runs_containers:
        image = batch_image(container)
        mounted = runtime if runtime is not None else not holds_snakemake(image, snakemake_images)
        return ImageChoice(image, ImageSource.CONTAINER, mounted)
    return ImageChoice(default_image, ImageSource.DEFAULT, bool(runtime))


RUNTIME_VOLUME_FORMS = "'efs:FS_ID[:ACCESS_POINT_ID]' (e.g. 'efs:fs-0123abcd') or 'host:/PATH'"


def parse_runtime_volume(text: str) -> Volume:
    """--awsbatch-mpi-runtime-volume: the file system that holds the runtime, mounted
    read-only at RUNTIME_MOUNT. ValueError says what is wrong."""
    text = text.strip()
    if text.count(":") > (3 if text.startswith("efs:") else 2) or text.endswith(":ro"):
        raise ValueError(
            f"'{text}' is not a runtime volume: write {RUNTIME_VOLUME_FORMS}; it is always "
            f"mounted read-only at {RUNTIME_MOUNT}"
        )
    try:
        return parse_volume(f"{text}:{RUNTIME_MOUNT}:ro")
    except ValueError:
        raise ValueError(
            f"'{text}' is not a runtime volume: write {RUNTIME_VOLUME_FORMS}"
        ) from None


def runtime_volume_text(volume: Volume) -> str:
    """The setting as the user writes it (`efs:FS_ID[:AP_ID]`, `host:/PATH`)."""
    return str(volume).removesuffix(f":{RUNTIME_MOUNT}:ro")


def image_of(request: JobRequest, settings: TranslationSettings) -> ImageChoice:
    """`choose_image` for one job, reading `awsbatch_image` and `awsbatch_runtime`."""
    res, rule = request.resources, request.rule
    runtime = None
    if given(res, "awsbatch_runtime"):
        runtime = flag(rule, "awsbatch_runtime", res["awsbatch_runtime"])
    image = str(res["awsbatch_image"]) if given(res, "awsbatch_image") else None
    if given(res, "awsbatch_job_definition"):
        # The rule's own job definition names the image (and its volumes): as before, unless
        # the rule says its definition runs Snakemake from the runtime.
        return ImageChoice(image or settings.default_image, ImageSource.DEFAULT, bool(runtime))
    choice = choose_image(
        settings.default_image,
        image,
        request.container,
        settings.snakemake_runs_containers,
        runtime,
        tuple(settings.snakemake_images or ()),
    )
    if choice.source == ImageSource.CONTAINER and (
        "://" in choice.image or choice.image.endswith(".sif")
    ):
        raise ResourceError(
            rule,
            "container",
            request.container,
            "AWS Batch runs Docker (OCI) images only: name one as 'docker://registry/image:tag', "
            "or let Snakemake run Apptainer images inside the job "
            "(--software-deployment-method apptainer, with Apptainer in --container-image).",
        )
    return choice


def with_runtime_volume(
    request: JobRequest,
    settings: TranslationSettings,
    queue: QueueInfo,
    choice: ImageChoice,
    volumes: tuple[Volume, ...],
) -> tuple[Volume, ...]:
    """The job's volumes plus the runtime's, or a refusal saying how to provide it."""
    shown = f"{choice.image} (from {_source_words(choice.source)})"
    if settings.runtime_volume is None:
        raise ResourceError(
            request.rule,
            "container" if choice.source == ImageSource.CONTAINER else "awsbatch_runtime",
            choice.image,
            f"the image {shown} has no Snakemake, so the job runs Snakemake from the plugin's "
            "runtime, and no runtime file system is set: install the runtime with "
            "`awsbatch-mpi runtime install --file-system FS_ID --job-queue QUEUE` and pass "
            "--awsbatch-mpi-runtime-volume efs:FS_ID; or, if the image does hold Snakemake "
            "and this plugin, say so with resources: awsbatch_runtime=False or "
            "--awsbatch-mpi-snakemake-images.",
        )
    runtime = settings.runtime_volume
    clash = [v for v in volumes if v.container_path == RUNTIME_MOUNT]
    if clash:
        raise ResourceError(
            request.rule,
            "awsbatch_volumes",
            str(clash[0]),
            f"{RUNTIME_MOUNT} is where the plugin's runtime is mounted in this job; mount "
            "the volume elsewhere.",
        )
    if runtime.kind is VolumeKind.HOST and queue.platform is Platform.FARGATE:
        raise ResourceError(
            request.rule,
            "--awsbatch-mpi-runtime-volume",
            runtime_volume_text(runtime),
            f"queue '{queue.name}' runs on Fargate, which has no host file systems; keep the "
            "runtime on EFS ('efs:FS_ID') for Fargate queues.",
        )
    return tuple(sorted((*volumes, runtime), key=lambda v: v.container_path))


def _source_words(source: str) -> str:
    return {
        ImageSource.CONTAINER: "the rule's container: directive",
        ImageSource.RESOURCE: "resources: awsbatch_image",
        ImageSource.DEFAULT: "--container-image",
    }[source]


def mixed_images_problem(group: str, images: Iterable[str]) -> str:
    """Why a group job whose rules name different images cannot run: it is one container."""
    return (
        f"Group job '{group}': its rules name different container images "
        f"({', '.join(sorted(images))}), but a group job runs in one Batch container. Give "
        "them the same container: directive, or put them in different groups."
    )


def missing_runtime_message(root: str = RUNTIME_ROOT) -> str:
    """What a job prints when its runtime is not on the mounted file system."""
    return (
        f"The awsbatch-mpi runtime {RUNTIME_VERSION} is not at {root} in this job: install "
        "it on the runtime file system with `awsbatch-mpi runtime install` (see "
        "docs/further.md, Rules in any image), or check --awsbatch-mpi-runtime-volume."
    )


def _python(root: str) -> str:
    """The runtime's launcher for a shell; the local emulation's process runtime puts
    container paths below ENV_LOCAL_FS_ROOT (unset on AWS and in containers)."""
    return f'"${{{ENV_LOCAL_FS_ROOT}:-}}"{shlex.quote(f"{root}/bin/python")}'


def in_runtime(command: str, root: str = RUNTIME_ROOT) -> str:
    """A Snakemake job command (written for `python` with Snakemake on PATH) that runs
    Snakemake from the runtime instead, for `/bin/sh -c`.

    `python` becomes a shell function of this one shell only: the rule's own commands run
    in new shells and see the image's `python` (if any), not the runtime's. The greedy
    scheduler: Snakemake's ILP solver is a bundled program that needs the image's loader.
    """
    python = _python(root)
    message = shlex.quote(missing_runtime_message(root))
    return (
        f"[ -x {python} ] || {{ echo {message} >&2; exit {EXIT_NO_RUNTIME}; }}; "
        f'python() {{ {python} "$@"; }}; '
        f"{command} --scheduler greedy"
    )


def runtime_agent_command(module: str, root: str = RUNTIME_ROOT) -> tuple[str, ...]:
    """The container command that runs `python -m module` from the runtime (the MPI node
    agent, the array runner) in an image without Python."""
    python = _python(root)
    message = shlex.quote(missing_runtime_message(root))
    return (
        *RUNTIME_SHELL,
        f"[ -x {python} ] || {{ echo {message} >&2; exit {EXIT_NO_RUNTIME}; }}; "
        f"exec {python} -m {module}",
    )
