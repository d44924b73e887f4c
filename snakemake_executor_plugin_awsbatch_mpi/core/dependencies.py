"""Hand workflow dependencies to Batch (`dependsOn`) under `--immediate-submit`.

The executor interface has no dependency API, so the plugin remembers which Batch job
produces each output file when it submits it, and a later job depends on the producers of
its inputs. Batch allows at most 20 `dependsOn` entries: wider fan-ins go through small
no-op barrier jobs, each depending on at most 20 jobs, in a tree.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

MAX_DEPENDS_ON = 20


class ProducerMap:
    """Output path → id of the Batch job that writes it (thread-safe)."""

    def __init__(self) -> None:
        self._by_path: dict[str, str] = {}
        self._lock = threading.Lock()

    def record(self, outputs: Iterable[str], job_id: str) -> None:
        with self._lock:
            for path in outputs:
                self._by_path[path] = job_id

    def upstream(self, inputs: Iterable[str]) -> list[str]:
        """Ids of the jobs producing `inputs`, each once, in input order."""
        with self._lock:
            ids = [self._by_path[p] for p in inputs if p in self._by_path]
        return list(dict.fromkeys(ids))


def reduce_dependencies(
    ids: list[str], submit_barrier: Callable[[list[str], int], str], limit: int = MAX_DEPENDS_ON
) -> list[str]:
    """Collapse `ids` to at most `limit` by submitting barrier jobs level by level.

    `submit_barrier(depends_on, n)` submits the n-th barrier and returns its id. A failing
    upstream job fails its barrier, which fails the dependent job, as with direct edges.
    """
    level = list(ids)
    count = 0
    while len(level) > limit:
        next_level = []
        for start in range(0, len(level), limit):
            chunk = level[start : start + limit]
            if len(chunk) == 1:
                next_level.append(chunk[0])
                continue
            next_level.append(submit_barrier(chunk, count))
            count += 1
        level = next_level
    return level
