"""The job images of containers/, for ``--runtime docker``: their tags, and building them.

Images are built from a source checkout (the Dockerfiles and the build context live there,
not in the installed wheel) with the classic builder, which needs no registry for a frontend.
The base image comes from ``containers/build-base.sh``: pulled when a registry answers, else
built from Debian packages.
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from ._common import EmulationError

logger = logging.getLogger(__name__)

VERSION = "0.1.0"
DEFAULT_JOB_IMAGE = f"snakemake-awsbatch-mpi:{VERSION}"
DEFAULT_MPI_IMAGE = f"snakemake-awsbatch-mpi:{VERSION}-mpi"
# The job image plus the self-contained runtime for rules in any image (issue 22).
DEFAULT_RUNTIME_IMAGE = f"snakemake-awsbatch-mpi:{VERSION}-runtime"


@dataclass(frozen=True)
class ImageBuild:
    tag: str
    dockerfile: str
    seconds: float


def source_root() -> Path | None:
    """The source checkout this package runs from, if it is one (it has containers/)."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "containers" / "Dockerfile").is_file() else None


def image_present(tag: str, docker: str = "docker") -> bool:
    proc = subprocess.run(
        [docker, "image", "inspect", tag], capture_output=True, text=True, timeout=60
    )
    return proc.returncode == 0


def image_size(tag: str, docker: str = "docker") -> int:
    """Bytes of an image as ``docker images`` counts them (all layers, uncompressed)."""
    proc = subprocess.run(
        [docker, "image", "inspect", "--format", "{{.Size}}", tag],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return int(proc.stdout.strip())


def build_image(tag: str, dockerfile: str, root: Path, docker: str = "docker") -> ImageBuild:
    """``docker build -f containers/<dockerfile> -t tag .`` with the classic builder."""
    started = time.monotonic()
    proc = subprocess.run(
        [docker, "build", "--quiet", "-f", f"containers/{dockerfile}", "-t", tag, "."],
        cwd=root,
        env={**os.environ, "DOCKER_BUILDKIT": "0"},
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise EmulationError(
            f"Building {tag} from containers/{dockerfile} failed:\n{proc.stderr.strip()[-3000:]}"
        )
    return ImageBuild(tag, dockerfile, time.monotonic() - started)


def ensure_images(job_image: str, mpi_image: str, docker: str = "docker") -> list[ImageBuild]:
    """Build whichever of the two images is missing (and the base first, if needed)."""
    missing = [
        (tag, dockerfile)
        for tag, dockerfile in ((job_image, "Dockerfile"), (mpi_image, "Dockerfile.mpi"))
        if not image_present(tag, docker)
    ]
    if not missing:
        return []
    root = source_root()
    if root is None:
        raise EmulationError(
            f"The images {', '.join(tag for tag, _ in missing)} are missing and this "
            "installation has no containers/ directory to build them from: build them from a "
            "source checkout (make images) or name existing ones with --image/--mpi-image."
        )
    base = subprocess.run(
        [str(root / "containers" / "build-base.sh")], capture_output=True, text=True
    )
    if base.returncode != 0:
        raise EmulationError(f"The base image is missing: {base.stderr.strip()}")
    return [build_image(tag, dockerfile, root, docker) for tag, dockerfile in missing]
