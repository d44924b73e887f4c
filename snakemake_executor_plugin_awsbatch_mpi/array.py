"""Entry point of array-job children: run this child's Snakemake command.

`python -m snakemake_executor_plugin_awsbatch_mpi.array s3://bucket/key.json` reads the command
map written by the executor, picks the entry of `AWS_BATCH_JOB_ARRAY_INDEX` and replaces itself
with `/bin/bash -c <command>` (`/bin/sh` in images without bash), so the child's exit code is
the command's. A command that is only the job launcher with plain arguments
(`core.command.launcher_args`) runs in this interpreter instead, which saves a second
interpreter start (and its imports) per child.

Runs inside the job's container; `array_jobs.py` builds the array job and its command map on
the submitting side. The module keeps the name `array`: it is spelled in the command of every
array child Batch runs (`array_jobs.ARRAY_RUNNER`), also by images of earlier releases.
"""

from __future__ import annotations

import json
import os
import sys

from .batch import clients
from .core.command import JOB_LAUNCHER, launcher_args


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not argv[0].startswith("s3://"):
        sys.stderr.write("usage: python -m snakemake_executor_plugin_awsbatch_mpi.array s3://...\n")
        return 2
    index = os.environ.get("AWS_BATCH_JOB_ARRAY_INDEX")
    if index is None:
        sys.stderr.write("AWS_BATCH_JOB_ARRAY_INDEX is not set: this is not an array child.\n")
        return 2
    bucket, _, key = argv[0][5:].partition("/")
    s3 = clients.client("s3", purpose=clients.Purpose.SIDE)
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    commands = json.loads(body)
    if index not in commands:
        sys.stderr.write(f"The command map {argv[0]} has no entry {index}.\n")
        return 2
    sys.stdout.write(f"[awsbatch-mpi] array child {index}: running its Snakemake job\n")
    sys.stdout.flush()
    args = launcher_args(commands[index])
    if args is not None:
        sys.argv = ["-c", *args]
        # Ends with Snakemake's own sys.exit: the child's exit code is the job's.
        exec(compile(JOB_LAUNCHER, "<awsbatch-mpi job launcher>", "exec"), {"__name__": "__main__"})
        return 0
    # A rule's own image (issue 22) may have no bash; every image has /bin/sh.
    shell = "/bin/bash" if os.access("/bin/bash", os.X_OK) else "/bin/sh"
    os.execv(shell, [shell, "-c", commands[index]])
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
