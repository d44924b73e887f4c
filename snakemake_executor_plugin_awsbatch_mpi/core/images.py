"""Does a job run in an image that can run it? (issue 21 item 6; pure)

Without `--container-image`, Snakemake gives every job its own default image
(`snakemake/snakemake:v<version>`). That image has neither the S3 storage plugin nor this
plugin (nor the MPI node agent), so on AWS every job fails when it starts, far from the cause.
The executor and `plan` collect the rules whose jobs would run in such an image and say so
once, before the first SubmitJob. A rule that names its own image (`awsbatch_image`, its own
`awsbatch_job_definition`, and later its `container:` directive) is not counted: only the
plan's final image decides, so this check learns whatever the planner learns.
"""

from __future__ import annotations

from collections.abc import Iterable

from .spec import JobSpec

# Snakemake's own images, as `--container-image` defaults to them (Docker Hub, any tag).
SNAKEMAKE_IMAGE_REPOSITORIES = (
    "snakemake/snakemake",
    "docker.io/snakemake/snakemake",
    "index.docker.io/snakemake/snakemake",
)
HOW_TO_GET_OURS = "containers/README.md"


def is_snakemake_image(image: str) -> bool:
    """Snakemake's own image (any tag or digest), which lacks what a Batch job needs."""
    repository = image.split("@", 1)[0].rsplit(":", 1)[0] if "/" in image else image
    return repository in SNAKEMAKE_IMAGE_REPOSITORIES


def runs_in_snakemake_image(spec: JobSpec) -> bool:
    """The job runs in Snakemake's image without the plugin's runtime mounted (issue 22:
    with the runtime, Snakemake and this plugin come from the runtime, so it can run)."""
    return (
        spec.job_definition is None
        and not spec.runtime
        and is_snakemake_image(spec.shape.image)
    )


def image_warning(image: str, rules: Iterable[str]) -> str | None:
    """One sentence: which image lacks what, for which rules, and how to get ours."""
    names = sorted(set(rules))
    if not names:
        return None
    which = f"rule {names[0]}" if len(names) == 1 else f"rules {', '.join(names)}"
    return (
        f"Jobs of {which} would run in {image}, Snakemake's own image (the default "
        "without --container-image), which has neither the S3 storage plugin nor this plugin "
        "nor its MPI node agent, so on AWS Batch they would fail as soon as they start: build "
        f"and push this plugin's image as {HOW_TO_GET_OURS} describes and pass it with "
        "--container-image <uri> (or name an image per rule with resources: awsbatch_image=...)."
    )


__all__ = [
    "HOW_TO_GET_OURS",
    "SNAKEMAKE_IMAGE_REPOSITORIES",
    "image_warning",
    "is_snakemake_image",
    "runs_in_snakemake_image",
]
