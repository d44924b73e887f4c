"""Rules in any image (issue 22): the runtime's size, and how long a job takes before its rule
starts in a Python-less image with the runtime, against the plugin's job image.

Each case starts a container that runs Snakemake on a one-rule workflow whose rule writes the
time it started; "before the rule" is from `docker run` to that time (container start,
Python start-up, Snakemake's imports, DAG). The runtime is bind-mounted from the local disk
(on AWS it comes from EFS, whose per-file latency adds to the imports: see docs/further.md).
Targets: runtime <= 250 MB; the runtime costs at most 2 s more than the job image.

    python benchmarks/anyimage.py [--repeats 5]
Needs Docker, `make images` and containers/test-images.sh.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from snakemake_executor_plugin_awsbatch_mpi.core.anyimage import (
    RUNTIME_MOUNT,
    RUNTIME_PYTHON,
    RUNTIME_ROOT,
)
from snakemake_executor_plugin_awsbatch_mpi.local.images import (
    DEFAULT_JOB_IMAGE,
    DEFAULT_RUNTIME_IMAGE,
    image_size,
)

BUSYBOX = "awsbatch-anyimage-busybox:1"
TARGET_MB = 250
TARGET_EXTRA_SECONDS = 2.0
SNAKEFILE = 'rule stamp:\n    output: "stamp"\n    shell: "date +%s > {output}"\n'


def run_once(image: str, python: str, workdir: Path, mount: Path | None) -> float:
    """Seconds from `docker run` to the rule's command, read from the modification time of
    the file it writes (nanoseconds, unlike busybox's `date`)."""
    stamp = workdir / "stamp"
    stamp.unlink(missing_ok=True)
    volumes = ["-v", f"{workdir}:/work"]
    if mount is not None:
        volumes += ["-v", f"{mount}:{RUNTIME_MOUNT}:ro"]
    started = time.time()
    subprocess.run(
        ["docker", "run", "--rm", "--network", "none", "--user", "0", "-w", "/work", *volumes,
         image, python, "-m", "snakemake", "--cores", "1", "--scheduler", "greedy", "--quiet"],
        check=True, capture_output=True,
    )
    return stamp.stat().st_mtime - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="awsbatch-anyimage-bench-") as tmp:
        mount = Path(tmp) / "runtime"
        mount.mkdir()
        subprocess.run(
            ["docker", "run", "--rm", "--user", "0", "-v", f"{mount}:/out",
             DEFAULT_RUNTIME_IMAGE, "cp", "-a", RUNTIME_ROOT, "/out/"],
            check=True, capture_output=True,
        )
        info = json.loads((mount / Path(RUNTIME_ROOT).name / "runtime.json").read_text())
        work = Path(tmp) / "wf"
        work.mkdir()
        (work / "Snakefile").write_text(SNAKEFILE)
        cases = {
            f"job image ({DEFAULT_JOB_IMAGE})": (DEFAULT_JOB_IMAGE, "python", None),
            f"busybox + runtime ({BUSYBOX})": (BUSYBOX, RUNTIME_PYTHON, mount),
        }
        medians = {}
        for name, (image, python, volume) in cases.items():
            run_once(image, python, work, volume)  # warm the page cache and the engine
            times = [run_once(image, python, work, volume) for _ in range(args.repeats)]
            medians[name] = statistics.median(times)
            print(f"{name}: before the rule {medians[name]:.2f} s "
                  f"(median of {args.repeats}; min {min(times):.2f}, max {max(times):.2f})")
    size_mb = info["bytes"] / 1e6
    extra = medians[list(cases)[1]] - medians[list(cases)[0]]
    print(f"runtime {RUNTIME_ROOT}: {size_mb:.0f} MB in {info['files']} files, "
          f"{len(info['libraries'])} shared libraries; runtime image "
          f"{image_size(DEFAULT_RUNTIME_IMAGE) / 1e6:.0f} MB "
          f"(job image {image_size(DEFAULT_JOB_IMAGE) / 1e6:.0f} MB)")
    print(f"the runtime adds {extra:+.2f} s before the rule starts")
    ok = size_mb <= TARGET_MB and extra <= TARGET_EXTRA_SECONDS
    print("targets met" if ok else
          f"targets NOT met (runtime <= {TARGET_MB} MB, <= {TARGET_EXTRA_SECONDS} s extra)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
