"""Measure the node agent's bootstrap overhead on loopback nodes (not collected by pytest).

Overhead = from the moment the last node joined ("all N nodes joined ... t=<unix time>") to
the moment the launcher shim starts the real mpirun (its log line says "(X s after the last
node joined)"). The job command is just ``mpirun ./hello``, so nothing else is in between:
hostfile writing, the command's shell, the shim's start, launcher detection and the
working-directory check or copy.

    python -m benchmarks.mpi_agent_overhead 2,4,8 [--runs 5] [--copy]

``--copy`` makes every child extract the working directory under its own root, so the
replication is measured too (otherwise the shared-directory check is).
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path

from tests.mpi.conftest import HELLO_C, Cluster

JOINED = re.compile(r"all \d+ nodes joined in ([\d.]+) s t=([\d.]+)")
STARTED = re.compile(r"t=([\d.]+) \(([\d.]+) s after the last node joined\)")
DONE = re.compile(r"job command exited with 0 t=([\d.]+)")


def run_once(root: Path, hello: Path, nodes: int, copy: bool) -> dict[str, float]:
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    cluster = Cluster(root, num_nodes=nodes, slots=1)
    work = root / "work"
    work.mkdir()
    shutil.copy(hello, work / "hello")
    try:
        for index in range(1, nodes):
            extra = {"AWSBATCH_MPI_SYNC_ROOT": str(root / f"root{index}")} if copy else {}
            cluster.start(index, **extra)
        cluster.start(0, "mpirun ./hello", cwd=work)
        cluster.wait(120)
    finally:
        cluster.kill()
    main = cluster.nodes[0]
    if main.code != 0:
        raise RuntimeError(cluster.logs())
    joined, started, done = JOINED.search(main.err), STARTED.search(main.err), DONE.search(main.err)
    assert joined and started and done, main.err
    return {
        "rendezvous": float(joined[1]),
        "overhead": float(started[2]),
        "mpirun": float(done[1]) - float(started[1]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("nodes", help="comma-separated node counts, e.g. 2,4,8")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--copy", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="awsbatch-mpi-overhead-") as tmp:
        hello = Path(tmp) / "hello"
        (Path(tmp) / "hello.c").write_text(HELLO_C)
        subprocess.run(["mpicc", "-o", str(hello), str(Path(tmp) / "hello.c")], check=True)
        for nodes in (int(n) for n in args.nodes.split(",")):
            runs = [
                run_once(Path(tmp) / f"n{nodes}", hello, nodes, args.copy) for _ in range(args.runs)
            ]
            summary = {
                key: (statistics.median(r[key] for r in runs), max(r[key] for r in runs))
                for key in runs[0]
            }
            print(
                f"nodes={nodes} runs={args.runs} "
                + " ".join(
                    f"{k}: median {m:.3f} s, max {x:.3f} s;" for k, (m, x) in summary.items()
                )
            )


if __name__ == "__main__":
    main()
