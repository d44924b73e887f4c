"""Bootstrap overhead of multi-node MPI jobs on the local emulation (2, 4 and 8 nodes).

    python benchmarks/mpi_bootstrap.py [--nodes 2,4,8] [--runs 3]

Each run submits one multi-node job through the plugin's own payload builders to the
emulation's `local-mpi` queue; every node runs the real node agent, and the main node runs
`mpirun -n <nodes> ./hello`. Reported per node count (median over runs):
- join → mpirun: from the last node joining to the launcher starting the real mpirun
  (the agent's own log lines); target < 1 s;
- job overhead: the Batch job's wall time (startedAt → stoppedAt) minus the time mpirun
  itself took, i.e. everything the agent adds (rendezvous, hostfile, launch, shutdown).
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from snakemake_executor_plugin_awsbatch_mpi.batch.client import BatchClient
from snakemake_executor_plugin_awsbatch_mpi.core.jobdef import register_payload, submit_payload
from snakemake_executor_plugin_awsbatch_mpi.core.request import JobRequest, TranslationSettings
from snakemake_executor_plugin_awsbatch_mpi.core.resources import translate
from snakemake_executor_plugin_awsbatch_mpi.core.spec import QueueInfo
from snakemake_executor_plugin_awsbatch_mpi.local import LOCAL_BUCKET, LocalEmulation
from snakemake_executor_plugin_awsbatch_mpi.mpi import ENV_KEY_URI
from snakemake_executor_plugin_awsbatch_mpi.mpi.key import key_uri, new_key

HELLO_C = r"""
#include <mpi.h>
#include <stdio.h>
int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank; MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0) printf("hello from rank 0\n");
    MPI_Finalize();
    return 0;
}
"""
JOIN_TO_MPIRUN = re.compile(r"\(([\d.]+) s after the last node joined\)")
PROGRAM = re.compile(r"MPIRUN_SECONDS=([\d.]+)")


def run_one(batch: BatchClient, logs, hello: Path, nodes: int) -> tuple[float, float]:
    command = (
        "/bin/bash",
        "-c",
        f"s=$(date +%s.%N); mpirun -n {nodes} {hello}; e=$(date +%s.%N); "
        'echo "MPIRUN_SECONDS=$(python -c "print($e - $s)")"',
    )
    settings = TranslationSettings(
        job_queue="local-cpu",
        default_image="local",
        multinode_job_queue="local-mpi",
        batch_attempts=1,
    )
    spec = translate(
        JobRequest("bench", 1, {"mpi": "mpirun", "tasks": nodes, "nodes": nodes}),
        settings,
        QueueInfo("local-mpi"),
        command,
        {},
        f"bootstrap-{nodes}",
        {},
        mpi_key_uri=key_uri(f"s3://{LOCAL_BUCKET}/bench", "bench", uuid.uuid4().hex),
    )
    batch.put_object(dict(spec.environment)[ENV_KEY_URI], new_key().encode())
    definition = batch.ensure_job_definition(register_payload(spec.shape))
    job_id = batch.submit(submit_payload(spec, definition))
    while True:
        job = batch.describe([job_id])[job_id]
        if job["status"] in ("SUCCEEDED", "FAILED"):
            break
        time.sleep(0.2)
    assert job["status"] == "SUCCEEDED", job.get("statusReason")
    stream = job["container"]["logStreamName"]
    text = "\n".join(
        e["message"]
        for e in logs.get_log_events(logGroupName="/aws/batch/job", logStreamName=stream)["events"]
    )
    join_to_mpirun = float(JOIN_TO_MPIRUN.search(text).group(1))
    program = float(PROGRAM.search(text).group(1))
    wall = (job["stoppedAt"] - job["startedAt"]) / 1000
    return join_to_mpirun, wall - program


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nodes", default="2,4,8")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if not shutil.which("mpicc"):
        print("needs Open MPI (mpicc, mpirun)")
        return 2
    with tempfile.TemporaryDirectory() as tmp, LocalEmulation() as emu:
        source = Path(tmp) / "hello.c"
        source.write_text(HELLO_C)
        hello = Path(tmp) / "hello"
        subprocess.run(["mpicc", "-O2", "-o", str(hello), str(source)], check=True)
        batch = BatchClient(
            client=emu.boto3_client("batch"),
            s3_client=emu.boto3_client("s3"),
            calls_per_second=100,
        )
        logs = emu.boto3_client("logs")
        print(f"{'nodes':>5}  {'join -> mpirun (s)':>18}  {'job overhead (s)':>16}")
        for nodes in [int(n) for n in args.nodes.split(",")]:
            results = [run_one(batch, logs, hello, nodes) for _ in range(args.runs)]
            join = statistics.median(r[0] for r in results)
            overhead = statistics.median(r[1] for r in results)
            print(f"{nodes:>5}  {join:>18.3f}  {overhead:>16.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
