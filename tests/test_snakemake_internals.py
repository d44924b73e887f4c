"""The one list of Snakemake internals the plugin uses, checked once at start (with fakes)."""

from __future__ import annotations

import inspect
import threading
from types import SimpleNamespace

import pytest

from snakemake_executor_plugin_awsbatch_mpi import snakemake_internals as internals
from snakemake_executor_plugin_awsbatch_mpi.snakemake_internals import SnakemakeInternalsError


class FakeRule:
    ruleinfo = SimpleNamespace(resources=((), {"mem_mb": "2 GB", "gpu": 1.5}))

    def expand_resources(self, wildcards, input, attempt, skip_evaluation=None):
        return {"attempt": attempt, "skip": skip_evaluation, "wildcards": wildcards}

    def expand_group(self, wildcards):
        return "g" if wildcards else None

    def expand_container_img(self, wildcards):
        return f"docker://quay.io/biocontainers/{wildcards['tool']}:1" if wildcards else None


class FakeWorkflow:
    def __init__(self, rules=None):
        self.rules = [FakeRule()] if rules is None else list(rules)
        self._source_archive = SimpleNamespace(query="s3://b/sources.tar.xz")
        self.deployment_settings = SimpleNamespace(deployment_method=frozenset())

    def cleanup_source_archive(self):
        raise AssertionError("the archive must be kept")


class FakeDag:
    def needrun_jobs(self):
        return iter(["job1", "job2"])


def test_the_running_snakemake_has_every_internal_the_plugin_uses():
    import snakemake.api
    import snakemake.dag
    import snakemake.io
    import snakemake.rules
    import snakemake.workflow

    classes = {
        "dag": snakemake.dag.DAG,
        "rule": snakemake.rules.Rule,
        "workflow": snakemake.workflow.Workflow,
        "workflow_api": snakemake.api.WorkflowApi,
        "iofile": snakemake.io._IOFile,
    }
    # Instance attributes (set in __init__) are checked on instances in the other tests.
    instance_only = {"ruleinfo", "_source_archive", "_executor_plugin"}
    listed = [i for i in (*internals.EXECUTOR, *internals.PLAN) if i.name not in instance_only]
    assert internals.missing(listed, classes) == []
    internals.check_plan()


def test_a_complete_snakemake_passes_the_start_check():
    internals.check_executor(FakeWorkflow(), FakeDag())
    internals.check_plan(SimpleNamespace(_prepare_dag=1, _build_dag=1, _executor_plugin=None))


def test_a_missing_internal_fails_at_start_naming_it_and_the_version(monkeypatch):
    monkeypatch.setattr(internals, "snakemake_version", lambda: "99.0.0")
    with pytest.raises(SnakemakeInternalsError) as raised:
        internals.check_executor(FakeWorkflow(), SimpleNamespace())
    message = str(raised.value)
    assert message.startswith("Snakemake 99.0.0 lacks what the awsbatch-mpi plugin relies on")
    assert "dag.needrun_jobs (used for checking every job before the first submission)" in message
    assert "pyproject.toml" in message


def test_a_rule_without_ruleinfo_is_refused_and_no_rules_checks_the_class(monkeypatch):
    class BareRule:
        expand_resources = FakeRule.expand_resources

    with pytest.raises(SnakemakeInternalsError, match=r"rule\.ruleinfo"):
        internals.check_executor(FakeWorkflow(rules=[BareRule()]), FakeDag())
    internals.check_executor(FakeWorkflow(rules=[]), FakeDag())  # Rule.expand_resources exists
    monkeypatch.setattr(internals, "_classes", lambda names: {n: object for n in names})
    with pytest.raises(SnakemakeInternalsError, match=r"rule\.expand_resources"):
        internals.check_executor(FakeWorkflow(rules=[]), FakeDag())


def test_plan_check_names_a_missing_workflow_method():
    with pytest.raises(SnakemakeInternalsError, match=r"workflow\._build_dag"):
        internals.check_plan(SimpleNamespace(_prepare_dag=1, _executor_plugin=None))


def test_accessors_go_through_the_listed_internals():
    workflow, rule = FakeWorkflow(), FakeRule()
    assert internals.needrun_jobs(FakeDag()) == ["job1", "job2"]
    job = SimpleNamespace(rule=rule, wildcards_dict={"s": "1"}, input=[], attempt=2)
    assert internals.evaluated_resources(job) == {
        "attempt": 2, "skip": {"tmpdir"}, "wildcards": {"s": "1"}
    }
    assert internals.declared_resources(rule) == {"mem_mb": "2 GB", "gpu": 1.5}
    assert internals.declared_resources(SimpleNamespace(ruleinfo=None)) is None
    assert internals.source_archive_query(workflow) == "s3://b/sources.tar.xz"
    assert internals.source_archive_query(SimpleNamespace(_source_archive=None)) == ""
    internals.keep_source_archive(workflow)
    workflow.cleanup_source_archive()  # replaced: no longer raises


def test_storage_urls_reads_storage_queries_and_skips_local_files():
    """A failed job's `log:` files: only those in storage have a URL to read back."""
    from snakemake_executor_plugin_awsbatch_mpi.snakemake_internals import storage_urls

    stored = SimpleNamespace(is_storage=True,
                             storage_object=SimpleNamespace(query="s3://b/run/logs/a.log"))
    local = SimpleNamespace(is_storage=False)
    assert storage_urls([stored, local, "plain/path.log"]) == ["s3://b/run/logs/a.log"]


def test_a_jobs_container_directive_and_whether_snakemake_runs_containers():
    from snakemake.settings.types import DeploymentMethod

    job = SimpleNamespace(rule=FakeRule(), wildcards_dict={"tool": "bwa"})
    assert internals.container_image(job) == "docker://quay.io/biocontainers/bwa:1"
    assert internals.container_image(SimpleNamespace(rule=FakeRule(), wildcards_dict={})) is None
    assert internals.group_name(job) == "g"
    workflow = FakeWorkflow()
    assert not internals.snakemake_runs_containers(workflow)
    workflow.deployment_settings.deployment_method = {DeploymentMethod.APPTAINER}
    assert internals.snakemake_runs_containers(workflow)


class JobScheduler:  # named as Snakemake's, so its timer's function has Snakemake's name
    def _schedule_reevalutation(self, delay: float) -> threading.Timer:
        timer = threading.Timer(delay, lambda: None)
        timer.start()
        return timer


def test_the_finished_runs_reevaluation_timer_is_cancelled_and_no_other():
    ours = JobScheduler()._schedule_reevalutation(30)
    other = threading.Timer(30, lambda: None)
    other.start()
    try:
        assert internals.cancel_reevaluation_timers() == 1
        ours.join(timeout=5)
        assert not ours.is_alive() and other.is_alive()
    finally:
        other.cancel()


def test_snakemakes_scheduler_still_reevaluates_through_a_named_timer():
    """If Snakemake renames it, the cancel silently stops working: this says so instead."""
    from snakemake.scheduling.job_scheduler import JobScheduler as Snakemakes

    assert f"{Snakemakes.__name__}._schedule_reevalutation." == internals.SCHEDULER_TIMER
    assert "threading.Timer(" in inspect.getsource(Snakemakes._schedule_reevalutation)
