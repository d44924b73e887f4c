"""The on-demand fallback queue of Spot-reclaimed jobs: which queue, what is refused."""

import pytest

from snakemake_executor_plugin_awsbatch_mpi.batch import model
from snakemake_executor_plugin_awsbatch_mpi.core.fallback import (
    FALLBACK_TAG,
    fallback_queue_of,
)
from snakemake_executor_plugin_awsbatch_mpi.core.planner import Environment, plan_job
from snakemake_executor_plugin_awsbatch_mpi.core.request import JobRequest, TranslationSettings
from snakemake_executor_plugin_awsbatch_mpi.core.resources import translate, validate_request
from snakemake_executor_plugin_awsbatch_mpi.core.spec import QueueInfo, ResourceError

SETTINGS = TranslationSettings(job_queue="spot", default_image="img",
                               multinode_job_queue="mpi", fallback_job_queue="ondemand")


def request(**resources):
    return JobRequest(rule="sort", threads=1, resources=resources)


def test_the_rule_resource_wins_over_the_setting_and_mpi_jobs_have_none():
    assert fallback_queue_of(request(), SETTINGS) == "ondemand"
    assert fallback_queue_of(request(awsbatch_fallback_queue="mine"), SETTINGS) == "mine"
    arn = "arn:aws:batch:eu-west-1:123456789012:job-queue/od"
    assert fallback_queue_of(request(awsbatch_fallback_queue=arn), SETTINGS) == arn
    assert fallback_queue_of(request(), TranslationSettings("q", "img")) is None
    assert fallback_queue_of(request(mpi="mpirun", tasks=2), SETTINGS) is None


@pytest.mark.parametrize(("value", "allowed"), [
    (5, "must name an on-demand job queue"),
    (True, "must name an on-demand job queue"),
    ("two words", "must be a job queue name"),
    ("spot", "already run in"),
])
def test_bad_values_are_refused_naming_the_rule_and_the_value(value, allowed):
    with pytest.raises(ResourceError) as info:
        validate_request(request(awsbatch_fallback_queue=value), SETTINGS)
    message = str(info.value)
    assert f"Rule 'sort': resource awsbatch_fallback_queue={value!r}" in message
    assert allowed in message


def test_an_mpi_rule_with_a_fallback_is_refused():
    with pytest.raises(ResourceError, match="never run on Spot"):
        validate_request(request(mpi="mpirun", tasks=2, awsbatch_fallback_queue="od"), SETTINGS)


def test_translate_checks_the_resource_too():
    with pytest.raises(ResourceError, match="awsbatch_fallback_queue"):
        translate(request(awsbatch_fallback_queue="a b"), SETTINGS, QueueInfo("spot"),
                  ("true",), {}, "sort", {})


def plan(queue, **resources):
    return plan_job(request(**resources), SETTINGS, queue, ("/bin/bash", "-c", "true"),
                    Environment({}), "wf", "run1", fallback_of="job-1",
                    validate=model.validate_request)


def test_the_fallback_request_is_planned_for_the_fallback_queue_and_tagged():
    submit = plan(QueueInfo("ondemand")).submit()
    assert submit["jobQueue"] == "ondemand"
    assert submit["tags"][FALLBACK_TAG] == "job-1"
    assert submit["tags"]["snakemake-rule"] == "sort"


def test_a_fallback_queue_with_spot_capacity_is_refused():
    with pytest.raises(ResourceError) as info:
        plan(QueueInfo("mixed", has_spot=True))
    assert "--awsbatch-mpi-fallback-job-queue='mixed'" in str(info.value)
    assert "Spot compute environments" in str(info.value)
    with pytest.raises(ResourceError, match="resource awsbatch_fallback_queue='mixed'"):
        plan(QueueInfo("mixed", has_spot=True), awsbatch_fallback_queue="mixed")
