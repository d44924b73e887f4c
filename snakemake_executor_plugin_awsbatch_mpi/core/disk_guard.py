"""The in-job disk check: a job whose rule gives `disk_mb` stops at once, with a clear message,
when its working directory has less free space (instead of failing an hour later with "No
space left on device", or filling the root volume the other jobs of the instance share).

It is a prefix of the job's `bash -c` command, so it runs in every image that can run
Snakemake (it needs only `python`, which Snakemake's own command uses too) and in the local
emulation alike, before the workflow sources are deployed. Single, array and multi-node jobs
(on the main node, which runs the command) all get it through the planner. The script is a
constant; the values reach it as arguments, each quoted for the shell: the size is an integer
computed here, the rule name and the resource as written are printed, never evaluated.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Sequence

from .disk import declared_disk
from .request import JobRequest

# ENOSPC's errno: "No space left on device".
DISK_GUARD_EXIT_CODE = 28
# The first words of the job's message (status.py recognises a failure by them).
DISK_GUARD_MARK = "awsbatch-mpi disk check:"

_SCRIPT = f"""\
import os, sys
need, rule, asked = int(sys.argv[1]), sys.argv[2], sys.argv[3]
here = os.getcwd()
stat = os.statvfs(here)
free = stat.f_bavail * stat.f_frsize
if free < need:
    sys.stderr.write(
        f"{DISK_GUARD_MARK} rule '{{rule}}' asks for {{asked}} ({{need // 10**6:,}} MB), but "
        f"its working directory {{here}} has only {{free // 10**6:,}} MB free, so the job "
        "stops before the rule runs. On EC2 all jobs on an instance share its root volume: "
        "give the compute environment a larger one (awsbatch-mpi setup --root-volume-gib N, "
        "or its launch template), run fewer such jobs at once, or lower the rule's disk.\\n"
    )
    sys.exit({DISK_GUARD_EXIT_CODE})
"""


def guard_prefix(rule: str, asked: str, need_bytes: int) -> str:
    """The shell text that runs the check and ends the job when it fails."""
    words = ["python", "-c", _SCRIPT, str(int(need_bytes)), rule, asked]
    return " ".join(shlex.quote(word) for word in words) + " || exit $?; "


def guarded_command(command: Sequence[str], request: JobRequest) -> tuple[str, ...]:
    """`command` (`bash -c TEXT`) with the disk check first, when the user gave a disk."""
    disk = declared_disk(request)
    if disk is None or len(command) != 3 or command[1] != "-c":
        return tuple(command)
    name, value, mib = disk
    need = math.ceil(mib * 1_048_576)
    prefix = guard_prefix(request.rule, f"{name}={value}", need)
    return (command[0], command[1], prefix + command[2])
