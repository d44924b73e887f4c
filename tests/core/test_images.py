"""Jobs that would run in Snakemake's own image are named once (issue 21 item 6)."""

from __future__ import annotations

import pytest

from snakemake_executor_plugin_awsbatch_mpi.core.images import (
    image_warning,
    is_snakemake_image,
    runs_in_snakemake_image,
)
from snakemake_executor_plugin_awsbatch_mpi.core.request import JobRequest, TranslationSettings
from snakemake_executor_plugin_awsbatch_mpi.core.resources import translate
from snakemake_executor_plugin_awsbatch_mpi.core.spec import QueueInfo

DEFAULT = "snakemake/snakemake:v9.27.1"


@pytest.mark.parametrize(
    ("image", "snakemakes"),
    [(DEFAULT, True), ("docker.io/snakemake/snakemake:latest", True),
     ("snakemake/snakemake@sha256:abc", True), ("snakemake/snakemake", True),
     ("123456789012.dkr.ecr.us-east-1.amazonaws.com/snakemake-awsbatch-mpi:0.1.0", False),
     ("snakemake-awsbatch-mpi:0.1.0", False), ("myorg/snakemake:v9", False),
     ("localhost:5000/snakemake/snakemake:v9", False)],
)
def test_is_snakemake_image(image, snakemakes):
    assert is_snakemake_image(image) is snakemakes


def spec(**resources):
    settings = TranslationSettings(job_queue="cpu", default_image=DEFAULT)
    return translate(JobRequest("r", 1, resources), settings, QueueInfo("cpu"),
                     ("/bin/bash", "-c", "true"), {}, "r", {})


def test_a_rule_naming_its_own_image_or_definition_is_not_counted():
    assert runs_in_snakemake_image(spec())
    assert not runs_in_snakemake_image(spec(awsbatch_image="ours:1"))
    assert not runs_in_snakemake_image(spec(awsbatch_job_definition="my-def"))


def test_one_sentence_names_the_image_what_it_lacks_and_how_to_get_ours():
    assert image_warning(DEFAULT, []) is None
    assert image_warning(DEFAULT, ["b", "a", "b"]) == (
        "Jobs of rules a, b would run in snakemake/snakemake:v9.27.1, Snakemake's own image "
        "(the default without --container-image), which has neither the S3 storage plugin nor "
        "this plugin nor its MPI node agent, so on AWS Batch they would fail as soon as they "
        "start: build and push this plugin's image as containers/README.md describes and pass "
        "it with --container-image <uri> (or name an image per rule with resources: "
        "awsbatch_image=...)."
    )
    assert image_warning(DEFAULT, ["a"]).startswith("Jobs of rule a would run in ")


def test_with_the_runtime_mounted_snakemakes_image_can_run_the_job():
    """Issue 22: the runtime brings Snakemake, the S3 plugin and this plugin."""
    from dataclasses import replace

    assert not runs_in_snakemake_image(replace(spec(), runtime=True))
