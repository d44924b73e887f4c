"""Collect a self-contained Python runtime from the job image into one directory tree.

Run inside the job image (containers/Dockerfile.runtime does, as root):

    python collect.py /opt/awsbatch-mpi/runtime/0.1.0

Why: a rule's own tool image (a BioContainers or vendor image) has no Python, no Snakemake
and maybe a different C library. Mounted read-only into such a container, this tree runs the
job's Snakemake (and the MPI node agent) with nothing taken from the image but the kernel and
`/bin/sh`:

    ROOT/bin/python             launcher (sh): starts the bundled dynamic loader with
                                --library-path ROOT/ld and --argv0 ROOT/bin/python, so
                                sys.executable is the launcher (subprocesses of Python work)
                                and no LD_LIBRARY_PATH leaks into the tools the rule runs
    ROOT/bin/python3.11         the job image's interpreter (never run directly)
    ROOT/ld/                    the dynamic loader and every shared library the interpreter
                                and the extension modules load (from ldd), glibc included
    ROOT/lib/python3.11/        the standard library, compiled (.pyc, unchecked hashes: the
                                tree is read-only where it is used)
    ROOT/lib/.../site-packages  every installed package of the image, in one directory
    ROOT/runtime.json           version, Python, glibc, architecture, size, file count

Standard library only: it runs with the image's Python before anything else is installed.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

PY = f"python{sys.version_info.major}.{sys.version_info.minor}"
# Not needed to run jobs, and large: tests, GUI toolkits, the pip bootstrapper.
SKIP_STDLIB = {"test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "pydoc_data"}
SKIP_ANYWHERE = {"__pycache__"}
# Packages jobs never use from the runtime: pip (nothing is installed in a job), and the ILP
# solver binaries PuLP bundles (they need the image's loader; jobs use the greedy scheduler).
SKIP_PACKAGES = ("pip", "pip-*.dist-info", "pulp/solverdir")
# Loaded with dlopen by glibc itself, so ldd never shows them: libgcc_s for thread
# cancellation (pthread_cancel, used by e.g. concurrent.futures at interpreter exit).
DLOPENED = ("libgcc_s.so.1",)
LDD_LINE = re.compile(r"^\s*(\S+)\s+=>\s+(\S+)\s+\(0x[0-9a-f]+\)")
LOADER_LINE = re.compile(r"^\s*(/\S*ld-linux\S*)\s+\(0x[0-9a-f]+\)")

LAUNCHER = """#!/bin/sh
# The runtime's Python: the bundled loader runs the bundled interpreter with the bundled
# libraries only (nothing of the image's C library is used, nothing is exported to children).
exec {root}/ld/{loader} --library-path {root}/ld --argv0 {root}/bin/python \\
  {root}/bin/{py} "$@"
"""


def ignore(skip: set[str]):
    def names(_directory: str, entries: list[str]) -> set[str]:
        return {entry for entry in entries if entry in skip or entry.endswith(".pyc")}

    return names


def copy_tree(source: Path, target: Path, skip: set[str]) -> None:
    shutil.copytree(source, target, symlinks=False, ignore=ignore(skip), dirs_exist_ok=True)


def site_directories() -> list[Path]:
    """Every directory of sys.path that holds installed packages (not the stdlib)."""
    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
    found = []
    for entry in sys.path:
        path = Path(entry).resolve() if entry else None
        if path is None or not path.is_dir() or path == stdlib or path.parent == stdlib:
            continue
        if path.name in ("site-packages", "dist-packages"):
            found.append(path)
    return found


def ldd(path: Path) -> tuple[dict[str, Path], Path | None]:
    """The libraries `path` loads (name -> file) and the loader, as ldd reports them."""
    proc = subprocess.run(["ldd", str(path)], capture_output=True, text=True)
    libraries: dict[str, Path] = {}
    loader = None
    for line in proc.stdout.splitlines():
        if match := LDD_LINE.match(line):
            libraries[match.group(1)] = Path(match.group(2))
        elif match := LOADER_LINE.match(line):
            loader = Path(match.group(1))
    return libraries, loader


def shared_objects(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and ".so" in p.name and not p.is_symlink()]


def main(root: Path) -> None:
    if root.exists():
        shutil.rmtree(root)
    (root / "bin").mkdir(parents=True)
    (root / "ld").mkdir()
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    skip = SKIP_STDLIB | SKIP_ANYWHERE | {"site-packages", "dist-packages"}
    copy_tree(stdlib, root / "lib" / PY, skip)
    lib_dynload = Path(sysconfig.get_config_var("DESTSHARED") or stdlib / "lib-dynload")
    if lib_dynload.is_dir():
        copy_tree(lib_dynload, root / "lib" / PY / "lib-dynload", SKIP_ANYWHERE)
    # Where this interpreter's site module looks below a prefix (Debian: dist-packages).
    packages = Path(site.getsitepackages([str(root)])[-1])
    packages.mkdir(parents=True, exist_ok=True)
    for directory in site_directories():
        copy_tree(directory, packages, SKIP_ANYWHERE)
    for pattern in SKIP_PACKAGES:
        for path in packages.glob(pattern):
            shutil.rmtree(path)
    interpreter = Path(os.path.realpath(sys.executable))
    shutil.copy2(interpreter, root / "bin" / PY)

    libraries: dict[str, Path] = {}
    loader: Path | None = None
    for path in [root / "bin" / PY, *shared_objects(root / "lib")]:
        found, its_loader = ldd(path)
        libraries.update(found)
        loader = loader or its_loader
    if loader is None:
        raise SystemExit(f"collect.py: ldd found no dynamic loader for {interpreter}")
    for name in DLOPENED:
        multiarch = f"/usr/lib/{sysconfig.get_config_var('MULTIARCH')}"
        for directory in ("/lib", "/usr/lib", "/lib64", multiarch):
            if (Path(directory) / name).is_file():
                libraries.setdefault(name, Path(directory) / name)
                break
    for name, path in sorted(libraries.items()):
        shutil.copy2(path.resolve(), root / "ld" / name)
    shutil.copy2(loader.resolve(), root / "ld" / loader.name)

    launcher = root / "bin" / "python"
    launcher.write_text(LAUNCHER.format(root=root, loader=loader.name, py=PY))
    launcher.chmod(0o755)
    (root / "bin" / "python3").symlink_to("python")

    # Compile once here: the tree is read-only where jobs use it, and compiling Snakemake's
    # imports in every job would cost seconds. Unchecked hashes: copies need not keep mtimes.
    subprocess.run(
        [str(launcher), "-m", "compileall", "-q", "-j", "0", "--invalidation-mode",
         "unchecked-hash", str(root / "lib")],
        check=False,
    )
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())
    files = sum(1 for p in root.rglob("*") if p.is_file())
    info = {
        "root": str(root),
        "version": root.name,
        "python": platform.python_version(),
        "glibc": platform.libc_ver()[1],
        "machine": platform.machine(),
        "bytes": size,
        "files": files,
        "libraries": sorted(libraries),
        "loader": loader.name,
    }
    (root / "runtime.json").write_text(json.dumps(info, indent=2) + "\n")
    summary = f"{size / 1e6:.0f} MB, {files} files, {len(libraries)} libraries"
    sys.stdout.write(f"collect.py: {root}: {summary}\n")


if __name__ == "__main__":
    if len(sys.argv) != 2 or not sys.argv[1].startswith("/"):
        raise SystemExit("usage: python collect.py /ABSOLUTE/RUNTIME/ROOT")
    main(Path(sys.argv[1]))
