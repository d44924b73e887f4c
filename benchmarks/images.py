"""Build the job and MPI images from containers/ and print build times and sizes.

Needs a Docker engine (the base image comes from containers/build-base.sh). Targets: job
image <= 350 MB, MPI image <= 500 MB (each node of an MPI job pulls it on a fresh instance).
``--no-build`` only prints the sizes of the images already there (exit 1 if over target).

    python benchmarks/images.py [--no-build]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from snakemake_executor_plugin_awsbatch_mpi.local.images import (
    DEFAULT_JOB_IMAGE,
    DEFAULT_MPI_IMAGE,
    build_image,
    image_size,
    source_root,
)

TARGETS_MB = {DEFAULT_JOB_IMAGE: 350, DEFAULT_MPI_IMAGE: 500}
DOCKERFILES = {DEFAULT_JOB_IMAGE: "Dockerfile", DEFAULT_MPI_IMAGE: "Dockerfile.mpi"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-build", action="store_true", help="Only print the sizes.")
    args = parser.parse_args()
    root = source_root()
    assert root is not None, "run from a source checkout"
    if not args.no_build:
        started = time.monotonic()
        subprocess.run([str(root / "containers" / "build-base.sh")], check=True)
        print(f"base image ready in {time.monotonic() - started:.0f} s")
    over = 0
    for tag, target in TARGETS_MB.items():
        if not args.no_build:
            build = build_image(tag, DOCKERFILES[tag], root)
            print(f"built {tag} in {build.seconds:.0f} s")
        size_mb = image_size(tag) / 1e6
        verdict = "ok" if size_mb <= target else "OVER TARGET"
        print(f"{tag}: {size_mb:.0f} MB (target <= {target} MB) {verdict}")
        over += size_mb > target
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
