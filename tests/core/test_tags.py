import pytest

from snakemake_executor_plugin_awsbatch_mpi.core.tags import parse_tags


def test_parse_tags():
    assert parse_tags("a=1 b=2,c=") == {"a": "1", "b": "2", "c": ""}
    with pytest.raises(ValueError, match="not KEY=VALUE"):
        parse_tags("novalue")
