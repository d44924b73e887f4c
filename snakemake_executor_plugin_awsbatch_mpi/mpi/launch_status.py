"""The launch status file: the wire contract between the launcher shims and the node agent.

Each shim appends one JSON line per event to ``$AWSBATCH_MPI_STATUS_FILE``:
``{"event": "start", "pid": P, "t": T, "launcher": PATH}`` when it starts the real launcher
and ``{"event": "exit", "pid": P, "t": T, "launcher": PATH, "code": C, "reason": R}`` when
it ends (R: the one-line failure summary, or null). The main node's agent reads the file
when the command has ended, to report mpirun's exit code as the job's. Writer and reader
live here so the format is written down once (standard library only).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import nodelog


def record_status(path: str | None, event: str, **fields: object) -> None:
    """Append a ``start`` or ``exit`` record for this launch to the agent's status file.

    The start record lets the agent wait for a launch still being wound up when the command
    ends first (a launcher that signals its process group on failure can kill the shell
    before the shim has written the exit code).
    """
    if not path:
        return
    record = {"event": event, "pid": os.getpid(), "t": round(time.time(), 3), **fields}
    try:
        with open(path, "a") as handle:
            handle.write(json.dumps(record) + "\n")
    except OSError as exc:
        nodelog.get().warning("cannot record the launcher's exit code in %s: %s", path, exc)


@dataclass
class LaunchStatus:
    codes: list[int] = field(default_factory=list)  # exit codes, in order
    pending: set[int] = field(default_factory=set)  # pids of launches without an exit record
    reasons: list[str] = field(default_factory=list)  # failure reports found, in order


def read_status(path: Path) -> LaunchStatus:
    """What the launcher shims recorded (see ``record_status``)."""
    status = LaunchStatus()
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return status
    for line in lines:
        try:
            record = json.loads(line)
            if record["event"] == "start":
                status.pending.add(int(record["pid"]))
            elif record["event"] == "exit":
                status.pending.discard(int(record["pid"]))
                status.codes.append(int(record["code"]))
                if record.get("reason"):
                    status.reasons.append(str(record["reason"]))
        except (ValueError, KeyError, TypeError):
            continue
    return status


def wait_for_launches(path: Path, timeout: float) -> LaunchStatus:
    """The status once every started launch has recorded its exit (or timeout passed)."""
    deadline = time.monotonic() + timeout
    status = read_status(path)
    while status.pending and time.monotonic() < deadline:
        time.sleep(0.05)
        status = read_status(path)
    return status
