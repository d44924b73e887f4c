"""What a check says and how a list of checks is printed."""

from __future__ import annotations

from snakemake_executor_plugin_awsbatch_mpi.ops import outcomes


def test_render_summarises_and_names_what_to_do():
    results = [outcomes.passed("a", "Fine."), outcomes.failed("b", "Broken. Fix it.")]
    text = outcomes.render(results)
    assert text.splitlines()[0] == "PASS  a: Fine."
    assert text.splitlines()[1] == "FAIL  b: Broken. Fix it."
    assert "1 passed, 0 warning(s), 1 failed. Fix the FAIL lines" in text
    assert outcomes.has_failures(results)
    assert not outcomes.has_failures(results[:1])
