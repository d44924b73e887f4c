"""The Snakemake side of the translation: Snakemake's objects read into the core's plain data."""

from types import SimpleNamespace

from snakemake_executor_plugin_awsbatch_mpi.snakemake_jobs import written_resources


def test_written_resources_come_from_the_rule_as_declared():
    rule = SimpleNamespace(ruleinfo=SimpleNamespace(resources=((), {
        "gpu": 1.5, "mem_mb": -100, "cb": lambda wildcards: 1})))
    assert written_resources(rule) == {"gpu": 1.5, "mem_mb": -100}
    assert written_resources(SimpleNamespace()) == {}
    # --set-resources r:gpu=2 r:mem_mib=500 replaces what the Snakefile says
    rule.name = "r"
    rule.workflow = SimpleNamespace(resource_settings=SimpleNamespace(
        overwrite_resources={"r": {"gpu": 2, "mem_mib": 500}}))
    assert written_resources(rule) == {}
