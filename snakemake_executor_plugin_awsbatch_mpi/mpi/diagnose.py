"""Find why an MPI launcher failed in its own output, to say it in one line.

When a rank fails, mpirun prints a multi-line report (Open MPI's help blocks, hydra's
banner) followed by Snakemake's own error lines; in the short log tail shown by the
plugin the report can scroll out of sight, and how many lines follow it depends on timing.
The launcher shim feeds every stderr line of mpirun to a ``FailureScanner`` and the node
agent repeats the one-line reason in its last log line, which is always in the tail.

Standard library only: this runs inside the job's container.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

WINDOW_LINES = 6  # the longest report we recognise spans this many lines
MAX_LINE = 400  # a rank may print huge lines; only the start of each can matter


def _rank_of(process_name: str) -> str:
    """The rank in an Open MPI process name: ``[[12345,1],2]`` or ``[prterun-h-1@1,2]``."""
    match = re.search(r"(\d+)\]*$", process_name)
    return match.group(1) if match else process_name


Render = Callable[[re.Match[str]], str]

PATTERNS: list[tuple[re.Pattern[str], Render]] = [
    # Open MPI 4: "... with errorcode 7."; Open MPI 5: "Proc: [...]  Errorcode: 7"
    (
        re.compile(
            r"MPI_ABORT was invoked on rank (\d+) in communicator (\S+)"
            r"\s+(?:with errorcode|Proc:.*?Errorcode:)\s*(-?\d+)"
        ),
        lambda m: f"MPI_ABORT was invoked on rank {m[1]} in communicator {m[2]} "
        f"with errorcode {m[3]}",
    ),
    # MPICH / Intel MPI
    (
        re.compile(r"application called MPI_Abort\(([^,]+), (-?\d+)\) - process (\d+)"),
        lambda m: f"MPI_Abort was called on rank {m[3]} in communicator {m[1]} "
        f"with errorcode {m[2]}",
    ),
    # Open MPI 4 (mpirun) and 5 (prterun): a rank killed by a signal
    (
        re.compile(
            r"noticed that process rank (\d+) with PID \S+ on node (\S+) "
            r"exited on signal (\d+) \(([^)]*)\)"
        ),
        lambda m: f"rank {m[1]} on node {m[2]} was killed by signal {m[3]} ({m[4]})",
    ),
    # Open MPI 4 and 5: a rank exited non-zero without MPI_Abort
    (
        re.compile(
            r"exited with non-zero status.*?Process name:\s*(\S+)\s+Exit code:\s*(-?\d+)"
        ),
        lambda m: f"rank {_rank_of(m[1])} exited with code {m[2]}",
    ),
    # MPICH hydra
    (
        re.compile(
            r"BAD TERMINATION OF ONE OF YOUR APPLICATION PROCESSES[\s=]*"
            r"RANK (\d+) PID \d+ RUNNING AT (\S+)[\s=]*"
            r"(?:EXIT CODE: (-?\d+)|KILLED BY SIGNAL: (\d+ \([^)]*\)))"
        ),
        lambda m: f"rank {m[1]} on {m[2]} "
        + (f"exited with code {m[3]}" if m[3] is not None else f"was killed by signal {m[4]}"),
    ),
    # Open MPI 4 (ORTE) and 5 (PRTE): the daemons on other nodes never came up
    (
        re.compile(r"(?:ORTE|PRTE) was unable to reliably start one or more daemons"),
        lambda m: "the launcher could not start its daemons on the other nodes",
    ),
]


@dataclass
class FailureScanner:
    """Remembers the first recognised failure report in a stream of launcher lines."""

    reason: str | None = None
    _recent: deque[str] = field(default_factory=lambda: deque(maxlen=WINDOW_LINES))

    def feed(self, line: str) -> None:
        if self.reason is not None:
            return
        self._recent.append(line.strip()[:MAX_LINE])
        text = " ".join(self._recent)
        for pattern, render in PATTERNS:
            match = pattern.search(text)
            if match:
                self.reason = render(match)
                return


def scan(lines: list[str]) -> str | None:
    """The first recognised failure reason in ``lines`` (for tests and offline use)."""
    scanner = FailureScanner()
    for line in lines:
        scanner.feed(line)
    return scanner.reason
