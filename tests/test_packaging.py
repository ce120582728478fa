"""The distribution declares what the package imports, and nothing it does not.

Every third-party module imported anywhere in ``edge_agent`` (at module level or
inside a function) must come from a distribution named in ``pyproject.toml``:
core dependencies for the runtime, an extra for ``train/`` and the optional model
backends. Every core dependency must be imported somewhere (a dependency nobody
imports only costs install time and disk on a gateway).
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import edge_agent

PACKAGE = Path(edge_agent.__file__).parent
PYPROJECT = PACKAGE.parent / "pyproject.toml"
OPTIONAL_BACKENDS = {"tflite_runtime"}
"""Tried as a fallback only on old images; never a dependency (it breaks with numpy 2)."""


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _declared() -> tuple[set[str], dict[str, set[str]]]:
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    core = {_name(r) for r in project["dependencies"]}
    extras = {k: {_name(r) for r in v} for k, v in project["optional-dependencies"].items()}
    return core, extras


def _imports(folder: Path) -> set[str]:
    """Top-level names of the modules imported anywhere under ``folder``."""
    found: set[str] = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"edge_agent"}


def _distributions(modules: set[str]) -> dict[str, set[str]]:
    known = packages_distributions()
    return {m: {d.lower().replace("_", "-") for d in known.get(m, [])} for m in modules}


def test_every_imported_library_is_declared() -> None:
    core, extras = _declared()
    optional = set().union(*(extras[e] for e in ("train", "tflite", "plot")))
    runtime = _imports(PACKAGE) - _imports(PACKAGE / "train") - OPTIONAL_BACKENDS
    training = _imports(PACKAGE / "train")
    undeclared = {
        module: dists
        for module, dists in _distributions(runtime).items()
        if not dists & (core | optional)
    }
    undeclared |= {
        module: dists
        for module, dists in _distributions(training).items()
        # the .tflite writer borrows LiteRT's flatbuffer schema: `[train,tflite]`
        if not dists & (core | extras["train"] | extras["tflite"])
    }
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"


def test_every_core_dependency_is_imported() -> None:
    core, _ = _declared()
    used = set().union(*_distributions(_imports(PACKAGE)).values())
    unused = core - used
    assert not unused, f"declared in pyproject.toml but never imported: {sorted(unused)}"


def test_prometheus_client_is_for_the_tests_only() -> None:
    # The daemon writes /metrics itself (edge_agent/exposition.py: the import cost 2 MB of
    # RSS); the tests read it with prometheus_client's parser.
    core, extras = _declared()
    assert "prometheus-client" not in core
    assert "prometheus-client" in extras["dev"]
    assert "prometheus_client" not in _imports(PACKAGE)


def test_the_version_has_one_home() -> None:
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))
    assert "version" not in project["project"]
    assert project["project"]["dynamic"] == ["version"]
    dynamic = project["tool"]["setuptools"]["dynamic"]["version"]
    assert dynamic == {"attr": "edge_agent.__version__"}
