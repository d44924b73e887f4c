"""The import rules of docs/architecture.md, checked on the package's source with `ast`.

- `core/` is pure: of the package it imports only `core` itself and `mpi`'s constants (the
  environment the node agent reads); of Snakemake, boto3 and moto nothing at all.
- `mpi/` runs inside the containers: it imports nothing else of the package and nothing outside
  Python's standard library, but for optional imports guarded by `except ImportError` (boto3,
  which reads an `s3://` rendezvous key).
- No module imports another module's underscore names; a private module (`local/_common.py`)
  is imported only from inside its own package.

Imports inside functions count too. The checker is run on small broken examples as well, so
that a rule that silently stopped matching fails here.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import snakemake_executor_plugin_awsbatch_mpi as package

PACKAGE = package.__name__
ROOT = Path(package.__file__).parent

# What core/ may import of the package, and which third-party roots it must not import.
CORE_MAY_IMPORT = (f"{PACKAGE}.core", f"{PACKAGE}.mpi")
CORE_MUST_NOT_IMPORT = ("snakemake", "snakemake_interface_", "boto3", "botocore", "moto")


def package_modules(root: Path = ROOT) -> dict[str, tuple[str, bool]]:
    """Dotted module name → (source, is a package `__init__`) for every module of the package."""
    modules: dict[str, tuple[str, bool]] = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        modules[".".join([PACKAGE, *parts])] = (path.read_text(), is_package)
    return modules


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _guarded(tree: ast.AST) -> set[int]:
    """ids of the import nodes inside a `try:` that catches ImportError (optional imports)."""
    guarded: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
            isinstance(handler.type, ast.Name)
            and handler.type.id in ("ImportError", "ModuleNotFoundError")
            for handler in node.handlers
        ):
            for statement in node.body:
                guarded |= {
                    id(inner)
                    for inner in ast.walk(statement)
                    if isinstance(inner, ast.Import | ast.ImportFrom)
                }
    return guarded


def _imports(
    module: str, source: str, is_package: bool
) -> list[tuple[int, str, str | None, bool]]:
    """(line, absolute module, imported name or None, optional) for every import of a module;
    optional: inside a `try:` that catches ImportError."""
    found: list[tuple[int, str, str | None, bool]] = []
    here = module if is_package else module.rpartition(".")[0]
    tree = ast.parse(source)
    guarded = _guarded(tree)
    for node in ast.walk(tree):
        optional = id(node) in guarded
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, None, optional) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = here.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            found += [(node.lineno, base, alias.name, optional) for alias in node.names]
    return found


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def _private_parts_problem(importer: str, target: str, importer_is_package: bool) -> str | None:
    """A private module in `target` may be reached only from inside the package that holds it."""
    parts = target.split(".")
    own_package = importer if importer_is_package else importer.rpartition(".")[0]
    for i, part in enumerate(parts):
        if _is_private(part):
            holder = ".".join(parts[:i])
            if not _within(own_package, (holder,)):
                return f"imports the private module {'.'.join(parts[: i + 1])}"
    return None


def violations(modules: dict[str, tuple[str, bool]]) -> list[str]:
    """Every broken import rule, as `module:line: what` (empty when the layout holds)."""
    problems: list[str] = []
    stdlib = sys.stdlib_module_names
    for module, (source, is_package) in sorted(modules.items()):
        in_core = _within(module, (f"{PACKAGE}.core",))
        in_mpi = _within(module, (f"{PACKAGE}.mpi",))
        for line, target, name, optional in _imports(module, source, is_package):
            where = f"{module}:{line}"
            full = f"{target}.{name}" if name else target
            ours = _within(target, (PACKAGE,))
            if in_core and ours and not _within(full if name and full in modules else target,
                                                CORE_MAY_IMPORT):
                problems.append(f"{where}: core imports {full} (core is pure)")
            if in_core and not ours and target.startswith(CORE_MUST_NOT_IMPORT):
                problems.append(f"{where}: core imports {target} (core knows no Snakemake or AWS "
                                "client)")
            if in_mpi and ours and not _within(target, (f"{PACKAGE}.mpi",)):
                problems.append(f"{where}: mpi imports {full} (mpi runs in the images alone)")
            if in_mpi and not ours and target.split(".")[0] not in stdlib and not optional:
                problems.append(f"{where}: mpi imports {target} (standard library only)")
            if not ours:
                continue
            problem = _private_parts_problem(module, full if full in modules else target,
                                             is_package)
            if problem:
                problems.append(f"{where}: {problem}")
            elif name and _is_private(name) and full not in modules:
                problems.append(f"{where}: imports the underscore name {name} from {target}")
    return problems


def test_the_package_keeps_its_import_rules():
    assert violations(package_modules()) == []


def test_every_module_of_the_package_is_checked():
    modules = package_modules()
    assert f"{PACKAGE}.core.planner" in modules and f"{PACKAGE}.mpi.agent" in modules
    assert len(modules) > 60


def _example(**sources: str) -> dict[str, tuple[str, bool]]:
    """A package from `core__x="..."`-style keywords (`__` separates the dotted parts)."""
    out: dict[str, tuple[str, bool]] = {}
    for key, source in sources.items():
        parts = key.split("__")
        is_package = parts[-1] == "init"
        name = ".".join([PACKAGE, *(parts[:-1] if is_package else parts)])
        out[name] = (source, is_package)
    return out


@pytest.mark.parametrize(
    "sources, expected",
    [
        ({"core__spec": "from ..batch.client import BatchClient\n", "batch__client": ""},
         "core imports"),
        ({"core__spec": "def f():\n    from ..ops import plan\n", "ops__init": "", "ops__plan": ""},
         "core imports"),
        ({"core__spec": "from .. import snakemake_internals\n", "snakemake_internals": ""},
         "core imports"),
        ({"core__spec": "from snakemake.io import is_flagged\n"}, "core knows no Snakemake"),
        ({"core__spec": "import boto3\n"}, "core knows no Snakemake"),
        ({"core__validation": "import botocore.session\n"}, "core knows no Snakemake"),
        ({"core__spec": "from snakemake_interface_executor_plugins.utils import x\n"},
         "core knows no Snakemake"),
        ({"mpi__agent": "from ..core.spec import JobSpec\n", "core__spec": ""}, "mpi imports"),
        ({"mpi__agent": "import yaml\n"}, "standard library only"),
        ({"mpi__key": "def f():\n    try:\n        import boto3\n    except OSError:\n"
                      "        pass\n"}, "standard library only"),
        ({"core__sizes": "from .request import _given\n", "core__request": ""},
         "underscore name _given"),
        ({"ops__plan": "from ..local._common import X\n", "local___common": ""},
         "private module"),
        ({"executor": "from .local import _common\n", "local__init": "", "local___common": ""},
         "private module"),
    ],
)
def test_each_broken_rule_is_reported(sources, expected):
    found = violations(_example(**sources))
    assert len(found) == 1 and expected in found[0], found


def test_what_the_rules_allow_is_not_reported():
    allowed = _example(
        core__multinode="from ..mpi import ENV_TASKS\nfrom .values import given\n",
        core__values="import math\nfrom collections.abc import Mapping\n",
        mpi__init="",
        mpi__gate="import socket\nfrom . import _log\nfrom .protocol import read\n",
        mpi___log="",
        mpi__protocol="",
        mpi__key="def f():\n    try:\n        import boto3\n    except ImportError:\n"
                 "        return None\n",
        local__runner="from ._common import EmulationError\n",
        local___common="",
        executor="from .core.values import given\nfrom snakemake.io import is_flagged\n",
    )
    assert violations(allowed) == []
