from snakemake_executor_plugin_awsbatch_mpi.core.dependencies import (
    ProducerMap,
    reduce_dependencies,
)


def test_producer_map_upstream_unique_in_order():
    producers = ProducerMap()
    producers.record(["a.txt", "a2.txt"], "job-a")
    producers.record(["b.txt"], "job-b")
    assert producers.upstream(["b.txt", "a.txt", "a2.txt", "raw.txt"]) == ["job-b", "job-a"]
    assert producers.upstream(["raw.txt"]) == []


def test_small_fan_in_needs_no_barrier():
    submitted = []
    ids = [f"j{i}" for i in range(20)]
    assert reduce_dependencies(ids, lambda deps, n: submitted.append(deps) or "b") == ids
    assert submitted == []


def test_fan_in_of_45_uses_a_barrier_tree():
    barriers: dict[str, list[str]] = {}

    def submit(deps, n):
        assert 2 <= len(deps) <= 20
        barriers[f"barrier{n}"] = deps
        return f"barrier{n}"

    ids = [f"j{i}" for i in range(45)]
    top = reduce_dependencies(ids, submit)
    assert len(top) <= 20
    # every original job is reachable from the top level through barriers
    reached, stack = set(), list(top)
    while stack:
        node = stack.pop()
        reached.add(node)
        stack.extend(barriers.get(node, []))
    assert set(ids) <= reached


def test_huge_fan_in_is_reduced_in_levels():
    count = 0

    def submit(deps, n):
        nonlocal count
        count += 1
        assert len(deps) <= 20
        return f"b{n}"

    assert len(reduce_dependencies([str(i) for i in range(5000)], submit)) <= 20
    assert count == 250 + 13  # 5000/20 barriers, then 250/20 rounded up
