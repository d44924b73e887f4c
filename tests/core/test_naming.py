from snakemake_executor_plugin_awsbatch_mpi.core.naming import (
    JOB_NAME_PATTERN,
    job_definition_name,
    job_name,
    short_hash,
)


def test_job_name_from_rule_and_wildcards():
    assert job_name("count_kmers", {"sample": "A1"}) == "count_kmers-A1"
    assert job_name("b", {"x": "dir/file.txt"}) == "b-dir_file_txt"


def test_job_name_always_valid():
    for rule, wc in [
        ("_private", {}),
        ("a", {}),
        ("r", {"s": "ü" * 300}),
        ("r", {"a": "x" * 200, "b": "y"}),
        ("9lives", {"w": "-"}),
    ]:
        name = job_name(rule, wc)
        assert JOB_NAME_PATTERN.match(name), name


def test_long_names_keep_distinct_suffix():
    a = job_name("r", {"s": "x" * 200 + "1"})
    b = job_name("r", {"s": "x" * 200 + "2"})
    assert len(a) == 128 and a != b


def test_hash_is_key_order_independent():
    assert short_hash({"a": 1, "b": 2}) == short_hash({"b": 2, "a": 1})
    assert job_definition_name({"x": 1}).startswith("snakemake-awsbatch-mpi-")
