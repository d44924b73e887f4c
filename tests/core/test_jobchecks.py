"""Whole-DAG refusals from plain data: target jobs and pipe() outputs."""

from snakemake_executor_plugin_awsbatch_mpi.core.command import TargetJob
from snakemake_executor_plugin_awsbatch_mpi.core.jobchecks import refusals


def test_each_rule_is_refused_once_wildcards_first_then_pipes():
    targets = [
        TargetJob("a", (("x", "1,2"),)),
        TargetJob("a", (("x", "'q"),)),
        TargetJob("b", (("x", "ok"),)),
    ]
    pipes = [("p", "out/one.fifo"), ("p", "out/two.fifo"), ("q", "q.fifo")]
    found = refusals(targets, pipes)
    assert len(found) == 3
    assert found[0].startswith("Rule 'a': wildcard x='1,2' contains a comma")
    assert found[0].endswith("Rename the files, or use other wildcards.")
    assert "Rule 'p' writes its output 'out/one.fifo' with pipe()" in found[1]
    assert "Rule 'q' writes its output 'q.fifo'" in found[2]


def test_a_workflow_batch_can_run_has_no_refusals():
    assert refusals([TargetJob("b", (("x", "a b"),))], []) == []
